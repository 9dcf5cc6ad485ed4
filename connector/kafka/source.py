"""The Kafka source: owns the consumer, its rebalance callbacks and offset commits.

Messages become frozen `Record`s right after poll; librdkafka errors become the
project's own types where they occur. Partition assignment asks the listener where
to start each partition (the database's next_offset); a partition without one starts
from the group's committed offset, then where `auto.offset.reset` says (earliest by
default). librdkafka's own reset is `error` underneath, so its reset event means one
of two things: no offset anywhere (the event has none; only when the group's offsets
could not be read at assignment) starts the partition where `auto.offset.reset` says;
an offset the broker no longer has means records deleted before they were read, and
ON_DATA_LOSS decides: `fail` stops the replica naming the partition and the offsets,
`skip` continues from the earliest offset kept, with a warning and
`eos_records_deleted_unread_total`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka import KafkaError as RdKafkaError

from connector.config import Settings
from connector.environment import group_protocol
from connector.errors import KafkaError
from connector.kafka.fetchers import incremental_assign, incremental_unassign
from connector.kafka.messages import MESSAGE_FIELDS, names_of, tps_of
from connector.kafka.offsets import OffsetCommits
from connector.kafka.resets import DataLoss, Resets
from connector.models import TopicPartition as TP
from connector.protocol.runs import Run, key_value_bytes

log = logging.getLogger(__name__)
# Per-message errors that only say "nothing more right now".
_BENIGN = frozenset({RdKafkaError._PARTITION_EOF})
_EARLIEST = frozenset({"earliest", "smallest", "beginning"})


class RebalanceListener(Protocol):
    def on_assigned(self, partitions: list[TP]) -> Mapping[TP, int | None]: ...
    def on_revoked(self, partitions: list[TP]) -> None: ...
    def on_lost(self, partitions: list[TP]) -> None: ...
    def on_records_deleted(self, tp: TP, count: int) -> None: ...


class KafkaSource:
    """One consumer in the pipeline's group, subscribed to the pipeline's topics."""

    def __init__(self, config: Mapping[str, str], topics: Sequence[str], on_data_loss: DataLoss = "fail",
                 consumer: Callable[[dict[str, Any]], Consumer] = Consumer) -> None:
        self._config: dict[str, Any] = dict(config)
        reset = self._config.pop("auto.offset.reset", "earliest").strip().lower()
        self._resets = Resets(OFFSET_BEGINNING if reset in _EARLIEST else OFFSET_END, on_data_loss)
        self._config["auto.offset.reset"] = "error"  # see the module's docstring
        # The end of a partition is where its next record will be: past a transaction's
        # commit marker or aborted records, which no record marks (see `take_ends`).
        self._config["enable.partition.eof"] = "true"
        self._ends: dict[TP, int] = {}
        self._starts: dict[TP, int] = {}  # where each assigned partition was started
        self._topics = list(topics)
        self._new_consumer = consumer  # Consumer, or a test's stand-in for librdkafka
        self._consumer: Consumer | None = None
        self._listener: RebalanceListener | None = None
        self._failure: BaseException | None = None
        self._commits = OffsetCommits()

    @property
    def _cooperative(self) -> bool:
        """Incremental assignment: the cooperative assignor, or KIP-848's (always incremental)."""
        return "cooperative" in self._config.get("partition.assignment.strategy", "") \
            or group_protocol(self._config) == "consumer"

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSource:
        return cls(settings.consumer_config(), settings.subscription.patterns(), settings.on_data_loss)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, listener: RebalanceListener) -> None:
        self._listener = listener
        # librdkafka's own log lines go through Python logging (so LOG_FORMAT=json holds for them).
        config = {**self._config, "error_cb": self._on_error, "on_commit": self._commits.on_commit,
                                  "logger": logging.getLogger("librdkafka")}
        try:
            self._consumer = self._new_consumer(config)
            self._consumer.subscribe(self._topics, on_assign=self._assign, on_revoke=self._revoke,
                                     on_lost=self._lost)
        except KafkaException as exc:
            raise KafkaError(f"cannot start the Kafka consumer: {exc.args[0]}") from exc

    def close(self) -> None:
        """Leave the group (the revoke callback runs first, and may still commit offsets)
        and release the consumer."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._raise_failure()

    # -- reading -------------------------------------------------------------------------
    def poll(self, max_records: int, timeout_s: float) -> list[Run]:
        """Up to `max_records` records, as runs of one partition each. The per-message
        work runs in C (`map` over the message methods): the loop makes no Python
        object per record until one is needed whole (`Run.record`)."""
        assert self._consumer is not None, "start() first"
        messages = self._consumer.consume(max_records, timeout_s)
        self._raise_failure()
        if not messages:
            return []
        if any(map(Message.error, messages)):  # rare: drop them, raising for the serious ones
            messages = [m for m in messages if not self._is_error(m)]
        runs: list[Run] = []
        start = 0
        for (topic, partition), group in itertools.groupby(zip(map(Message.topic, messages),
                                                                map(Message.partition, messages), strict=True)):
            stop = start + len(list(group))
            chunk = messages[start:stop]
            values = list(map(Message.value, chunk))
            nbytes = key_value_bytes(values, map(Message.key, chunk))
            runs.append(Run(cast(str, topic), cast(int, partition), chunk, values, nbytes, MESSAGE_FIELDS))
            start = stop
        return runs

    def _is_error(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return False
        offset = message.offset()
        if error.code() == RdKafkaError._PARTITION_EOF and offset is not None:
            self._ends[(cast(str, message.topic()), cast(int, message.partition()))] = offset
        elif error.code() == RdKafkaError._AUTO_OFFSET_RESET and (offset is None or offset < 0):
            self._start_new_partition(message)
        elif error.code() == RdKafkaError._AUTO_OFFSET_RESET:
            self._records_deleted(message, cast(int, offset), error)
        elif error.code() not in _BENIGN:
            self._message_error(message, error)
        return True

    def take_ends(self) -> dict[TP, int]:
        """Partitions read to their end since the last call, with the offset their next
        record will have. Under read_committed that is past the last transaction's
        marker (and past aborted records), which the last record's offset + 1 is not:
        committing it as next_offset lets lag reach 0. A seek or rebalance drops it."""
        ends, self._ends = self._ends, {}
        return ends

    def _message_error(self, message: Message, error: RdKafkaError) -> None:
        where = f"{message.topic()}[{message.partition()}]"
        if error.fatal() or error.code() in (RdKafkaError.UNKNOWN_TOPIC_OR_PART, RdKafkaError.TOPIC_AUTHORIZATION_FAILED):
            raise KafkaError(f"Kafka error on {where}: {error.str()}")
        log.warning("Kafka error on %s (will retry): %s", where, error.str())

    def _group_offsets(self, consumer: Consumer, partitions: list[TopicPartition]) -> dict[TP, int]:
        """Where partitions with no row in the database start: the group's committed
        offset, else where auto.offset.reset says. If the coordinator does not answer,
        none: librdkafka looks the offsets up itself, and its reset event for a partition
        with none starts it (`_start_new_partition`)."""
        try:
            committed = consumer.committed(partitions, timeout=10)
        except KafkaException as exc:
            log.warning("the group's committed offsets could not be read (%s); librdkafka looks them up", exc.args[0])
            return {}
        return {(c.topic, c.partition): c.offset if c.offset >= 0 else self._resets.new_start for c in committed}

    def _start_new_partition(self, message: Message) -> None:
        """No offset in the database nor in the group: start where auto.offset.reset says."""
        tp = (cast(str, message.topic()), cast(int, message.partition()))
        log.info("%s[%d] has no committed offset: reading from the %s", *tp,
                 "beginning" if self._resets.new_start == OFFSET_BEGINNING else "end")
        self._restart_fetch(tp, self._resets.new_start)

    def _records_deleted(self, message: Message, needed: int, error: RdKafkaError) -> None:
        """The broker no longer has the offset `needed` this partition was to be read from."""
        assert self._consumer is not None
        topic, partition = cast(str, message.topic()), cast(int, message.partition())
        where = f"{topic}[{partition}]"
        try:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        except KafkaException as exc:
            raise KafkaError(f"{where}: offset {needed} is out of range and the broker's range could not be read "
                             f"({exc.args[0]}); retried at the next start") from exc
        lost = self._resets.records_deleted(where, needed, low, high, error.str())
        if self._listener is not None:
            self._listener.on_records_deleted((topic, partition), lost)
        self._ends.pop((topic, partition), None)
        self._restart_fetch((topic, partition), low)

    def _restart_fetch(self, tp: TP, offset: int) -> None:
        """Read `tp` from `offset` after librdkafka stopped it on an offset reset (a seek
        is refused then): assign it again; under the eager protocol the whole assignment,
        every other partition from where the application has read it."""
        assert self._consumer is not None
        self._starts[tp] = offset
        if self._cooperative:
            self._consumer.incremental_unassign([TopicPartition(*tp)])
            self._consumer.incremental_assign([TopicPartition(*tp, offset)])
            return
        current = self._consumer.position(self._consumer.assignment())
        self._consumer.assign([TopicPartition(p.topic, p.partition, offset) if (p.topic, p.partition) == tp
                               else TopicPartition(p.topic, p.partition,
                                                   p.offset if p.offset >= 0 else self._starts[(p.topic, p.partition)])
                               for p in current])

    # -- positions and commits -------------------------------------------------------------
    def commit_offsets(self, offsets: Mapping[TP, int]) -> None:
        """Commit next_offsets to the group, asynchronously (connector/kafka/offsets.py)."""
        self._commits.send(self._consumer, offsets)

    def seek(self, offsets: Mapping[TP, int]) -> list[TP]:
        """Move owned partitions to these next_offsets (after being fenced); the
        partitions the consumer could not move (their reads are not from there)."""
        if self._consumer is None:
            return []
        failed = []
        for (topic, partition), offset in offsets.items():
            self._ends.pop((topic, partition), None)  # read before the seek: not where it now reads
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                failed.append((topic, partition))
                log.warning("seek %s[%d] to %d failed (%s); nothing read of it is buffered until a seek takes",
                            topic, partition, offset, exc.args[0])
        return failed

    def high_watermark(self, tp: TP) -> int | None:
        """The partition's high watermark as of the last fetch (no broker round trip)."""
        if self._consumer is None:
            return None
        try:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except KafkaException:
            return None
        return int(high) if high is not None and high >= 0 else None

    # -- callbacks (run inside poll) -------------------------------------------------------------
    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            assert self._listener is not None
            for tp in tps_of(partitions):
                self._ends.pop(tp, None)
            starts = self._listener.on_assigned(tps_of(partitions))
            unknown = [TopicPartition(p.topic, p.partition) for p in partitions
                       if starts.get((p.topic, p.partition)) is None]
            grouped = self._group_offsets(consumer, unknown) if unknown else {}
            for p in partitions:
                offset = starts.get((p.topic, p.partition))
                p.offset = offset if offset is not None else grouped.get((p.topic, p.partition), OFFSET_INVALID)
                self._starts[(p.topic, p.partition)] = p.offset
            log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]@{p.offset}" for p in partitions) or "nothing")
            if self._cooperative:
                incremental_assign(consumer, partitions)
            else:
                consumer.assign(partitions)
        except BaseException as exc:  # re-raised from poll(): librdkafka swallows it
            self._failure = self._failure or exc

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %d partition(s): %s", len(partitions), names_of(partitions))
        self._callback(consumer, self._listener.on_revoked if self._listener else None, partitions)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %d partition(s): dropping their buffers without a commit: %s", len(partitions),
                    names_of(partitions))
        self._callback(consumer, self._listener.on_lost if self._listener else None, partitions)

    def _callback(self, consumer: Consumer, handler: Any, partitions: list[TopicPartition]) -> None:
        self._commits.forget(tps_of(partitions))
        for tp in tps_of(partitions):
            self._ends.pop(tp, None)
            self._starts.pop(tp, None)
        try:
            if handler is not None:
                handler(tps_of(partitions))
        except BaseException as exc:
            self._failure = self._failure or exc
        if self._cooperative:  # under eager, the client unassigns everything after the callback
            try:
                incremental_unassign(consumer, partitions)
            except BaseException as exc:
                self._failure = self._failure or exc

    def _on_error(self, error: RdKafkaError) -> None:
        if error.fatal():
            self._failure = self._failure or KafkaError(f"fatal Kafka error: {error.str()}")
        else:
            log.warning("Kafka: %s", error.str())

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
