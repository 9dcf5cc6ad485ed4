"""A short-lived Kafka client for what the operator's commands read: a topic's
partitions, watermarks, the group's committed offsets and offsets for a time. It never
joins the group. Errors leave as the project's KafkaError, naming what was read."""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from connector.errors import KafkaError
from connector.models import TopicPartition

TIMEOUT_S = 10.0


class Admin:
    """Reads through one consumer that never subscribes; `timeout_s` bounds each request."""

    def __init__(self, consumer: Consumer, timeout_s: float = TIMEOUT_S) -> None:
        self._consumer, self._timeout_s = consumer, timeout_s

    def partitions(self, topics: Sequence[str]) -> dict[str, list[int] | str]:
        """Each topic's partitions, or why it is not available (it does not exist, or the
        broker's error)."""
        metadata = self._consumer.list_topics(timeout=self._timeout_s)
        found: dict[str, list[int] | str] = {}
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                found[topic] = meta.error.str() if meta is not None and meta.error else "does not exist"
            else:
                found[topic] = sorted(meta.partitions)
        return found

    def topics(self, wanted: Container[str]) -> list[str]:
        """The topics in `wanted` the cluster has (its internal `__…` topics left out)."""
        metadata = self._consumer.list_topics(timeout=self._timeout_s)
        return sorted(t for t in metadata.topics if t in wanted and not t.startswith("__"))

    def watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        """(low, high): the first offset kept and the offset the next record will take."""
        low, high = self._consumer.get_watermark_offsets(KafkaPartition(*tp), timeout=self._timeout_s)
        return int(low), int(high)

    def committed(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None where it has none)."""
        found = self._consumer.committed([KafkaPartition(*tp) for tp in tps], timeout=self._timeout_s)
        return {(p.topic, p.partition): p.offset if p.offset >= 0 else None for p in found}

    def offset_for_time(self, tp: TopicPartition, when_ms: int) -> int | None:
        """The first offset whose timestamp is at or after `when_ms`; None if none is."""
        found = self._consumer.offsets_for_times([KafkaPartition(*tp, when_ms)], timeout=self._timeout_s)[0]
        return int(found.offset) if found.offset >= 0 else None


@contextmanager
def admin(config: Mapping[str, Any], doing: str, timeout_s: float = TIMEOUT_S) -> Iterator[Admin]:
    """An Admin for the block; a client error becomes KafkaError("<doing>: …")."""
    try:
        consumer = Consumer({**config, "enable.auto.commit": "false"})
    except KafkaException as exc:
        raise KafkaError(f"{doing}: invalid client configuration: {exc.args[0]}") from exc
    try:
        yield Admin(consumer, timeout_s)
    except KafkaException as exc:
        raise KafkaError(f"{doing}: {exc.args[0]}") from exc
    finally:
        consumer.close()
