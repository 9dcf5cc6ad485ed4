"""Fetching the partitions an incremental rebalance kept as soon as it ends.

librdkafka pauses every assigned partition when an incremental rebalance starts and
resumes them when the callback's incremental assign or unassign returns, but the resume
does not wake the broker threads that fetch them (`rdkafka_partition.c`: a partition that
stays in the active fetch state never signals its broker): a thread with nothing else in
flight sleeps up to its fixed 1 s before it fetches them again. Measured on Apache Kafka,
the partitions a replica kept stalled up to 1.19 s per rebalance.

Any request to a broker wakes its thread. `assignment()` returns once librdkafka has
served the resume (both go through its one main queue); then one ListOffsets request per
leader (`offsets_for_times` groups the partitions by leader) wakes each fetcher, which
fetches the resumed partitions at once.
"""

from __future__ import annotations

import logging

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

log = logging.getLogger(__name__)
WAKE_TIMEOUT_S = 1.0  # librdkafka's fetchers wake by themselves within 1 s anyway
LATEST = OFFSET_END  # ListOffsets' "latest" timestamp: any answer will do


def incremental_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    consumer.incremental_assign(partitions)
    wake_fetchers(consumer)


def incremental_unassign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    consumer.incremental_unassign(partitions)
    wake_fetchers(consumer)


def wake_fetchers(consumer: Consumer) -> None:
    """Best effort: if it fails (the consumer closing, a broker away), the partitions
    resume within the second."""
    try:
        owned = consumer.assignment()
        if owned:
            consumer.offsets_for_times([TopicPartition(p.topic, p.partition, LATEST) for p in owned],
                                       timeout=WAKE_TIMEOUT_S)
    except KafkaException as exc:
        log.debug("waking the fetchers after a rebalance failed: %s", exc.args[0])
