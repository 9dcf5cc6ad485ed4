"""Dead letters forwarded to ERRORS_DEADLETTER_TOPIC.

The table is the record of truth: a dead letter is inserted by the commit transaction
of the checkpoint that read it, so it exists exactly once. Forwarding runs on a thread
of its own with its own database connection, never on the consumer loop: woken at
start, after each checkpoint that dead-lettered records, and every FORWARD_EVERY_S. It
claims a batch (rows another replica's forwarder holds are skipped), produces it, and
marks each dead letter forwarded once the broker acknowledged it, in one transaction.
A crash between the acknowledgement and the mark forwards it again: the topic is
at-least-once, the table exactly-once.

A forwarded message has the record's key and value, its headers, and these:
`eos.error.class`, `eos.error`, `eos.source` (`topic[partition]@offset`),
`eos.checkpoint.id` and `eos.pipeline`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connector.config import Settings
from connector.errors import ConnectorError, KafkaError
from connector.kafka.client import producer_config
from connector.sink import deadletters as dl

if TYPE_CHECKING:
    from connector.sink.postgres import PostgresStore

log = logging.getLogger(__name__)
FORWARD_BATCH = 1000
FLUSH_TIMEOUT_S = 10.0
FORWARD_EVERY_S = 5.0  # a look for dead letters left behind (a failed try, another replica's)


def forwarded_headers(row: Any, pipeline: str) -> list[tuple[str, bytes | None]]:
    return [*dl.decode_headers(row.headers), ("eos.error.class", row.error_class.encode()),
            ("eos.error", row.error.encode()), ("eos.source", f"{row.topic}[{row.partition}]@{row.offset}".encode()),
            ("eos.checkpoint.id", str(row.checkpoint_id).encode()), ("eos.pipeline", pipeline.encode())]


class Forwarder:
    """Produces a pipeline's unforwarded dead letters to a topic, on a thread of its own.
    No I/O until `start()`."""

    def __init__(self, store: PostgresStore, producer_config: Mapping[str, Any], topic: str) -> None:
        self._store, self._config, self.topic = store, dict(producer_config), topic  # the store is its own
        self._producer: Any = None
        self._wake, self._closed = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, replica: str) -> Forwarder | None:
        """A forwarder with a store of its own (its connection is the forwarder's, never
        the commit's); None without ERRORS_DEADLETTER_TOPIC."""
        if not settings.errors_deadletter_topic:
            return None
        from connector.sink.postgres import PostgresStore

        return cls(PostgresStore.from_settings(settings, replica), producer_config(settings),
                   settings.errors_deadletter_topic)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="deadletter-forwarder")
        self._thread.start()

    def wake(self) -> None:
        """New dead letters were committed: forward them soon."""
        self._wake.set()

    def close(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Stop the thread, forward what the final checkpoint dead-lettered, and close."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._thread is None or not self._thread.is_alive():  # its connection is free
            self.forward()
            self._store.close()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self.forward()
            self._wake.wait(FORWARD_EVERY_S)
            self._wake.clear()

    def forward(self) -> int:
        """Forward what is pending; how many were acknowledged. Never raises: a failure
        is logged and the rest is forwarded at the next wake."""
        sent = 0
        try:
            while True:
                claimed, acked = self._forward_batch()
                sent += acked
                if acked < claimed:
                    raise KafkaError(f"{claimed - acked} dead letter(s) not acknowledged by the broker")
                if claimed < FORWARD_BATCH:
                    break
        except ConnectorError as exc:
            log.warning("forwarding dead letters to %r failed (retried in %.0f s): %s", self.topic, FORWARD_EVERY_S,
                        exc)
        except Exception:  # the thread must live on: the next wake tries again
            log.exception("forwarding dead letters to %r failed (retried in %.0f s)", self.topic, FORWARD_EVERY_S)
        if sent:
            log.info("forwarded %d dead letter(s) to %r", sent, self.topic)
        return sent

    def _forward_batch(self) -> tuple[int, int]:
        """One batch: how many dead letters were claimed, and how many the broker acknowledged."""
        acked: list[tuple[Any, ...]] = []

        def send(rows: list[Any]) -> list[tuple[Any, ...]]:
            acked.extend(self._produce(rows))
            return acked
        return self._store.forward_deadletters(FORWARD_BATCH, send), len(acked)

    def _produce(self, rows: list[Any]) -> list[tuple[Any, ...]]:
        from confluent_kafka import KafkaException, Producer

        acked: list[tuple[Any, ...]] = []

        def delivered(err: Any, _msg: Any, key: tuple[Any, ...]) -> None:
            if err is None:
                acked.append(key)
            else:
                log.warning("dead letter %s not delivered: %s", key, err)

        try:
            if self._producer is None:
                self._producer = Producer(self._config)
            for row in rows:
                key = dl.key_of(row)
                self._producer.produce(self.topic, value=row.value, key=row.key,
                                       headers=forwarded_headers(row, self._store.pipeline),
                                       on_delivery=lambda err, msg, key=key: delivered(err, msg, key))
            self._producer.flush(FLUSH_TIMEOUT_S)
        except (KafkaException, BufferError) as exc:
            raise KafkaError(f"producing to {self.topic!r}: {exc}") from exc
        return acked

