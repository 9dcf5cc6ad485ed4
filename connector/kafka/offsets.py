"""Kafka offset commits after each database commit: asynchronous and idempotent. A
failure is only logged and the offset retried with the next checkpoint's — the database
is the source of truth; Kafka's offsets serve lag monitoring and a first start. Offsets
only move forward: a failed commit is retried only if no newer one was sent since."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from connector.models import TopicPartition as TP

log = logging.getLogger(__name__)


class OffsetCommits:
    def __init__(self) -> None:
        self._retry: dict[TP, int] = {}  # offsets whose Kafka commit failed
        self._newest: dict[TP, int] = {}  # the newest offset asked to be committed, per partition

    def send(self, consumer: Consumer | None, offsets: Mapping[TP, int]) -> None:
        """Commit next_offsets to the group (with those to retry), asynchronously."""
        pending = {**self._retry, **offsets}
        self._retry = {}
        if consumer is None or not pending:
            return
        for tp, offset in pending.items():
            self._newest[tp] = max(offset, self._newest.get(tp, offset))
        tps = [TopicPartition(t, p, o) for (t, p), o in sorted(pending.items())]
        try:
            consumer.commit(offsets=tps, asynchronous=True)
        except KafkaException as exc:
            self._retry.update(pending)
            log.warning("Kafka offset commit not sent (retried at the next checkpoint): %s", exc.args[0])

    def on_commit(self, error: RdKafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's answer to a commit (called inside poll)."""
        failed = [p for p in partitions if error is not None or p.error is not None]
        if failed:
            reason = error if error is not None else failed[0].error
            log.warning("Kafka offset commit failed for %d partition(s) (retried at the next checkpoint): %s",
                        len(failed), reason.str() if reason is not None else "unknown")
        for p in failed:
            tp = (p.topic, p.partition)
            if p.offset >= self._newest.get(tp, p.offset):  # a newer commit was sent after it: never go back
                self._retry[tp] = max(p.offset, self._retry.get(tp, p.offset))

    def forget(self, partitions: Iterable[TP]) -> None:
        """Partitions revoked or lost: their offsets are another replica's to commit."""
        for tp in partitions:
            self._retry.pop(tp, None)
            self._newest.pop(tp, None)
