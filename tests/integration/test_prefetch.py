"""A replica's read-ahead is bounded: over a backlog, librdkafka's pre-fetch queue holds at
most `queued.max.messages.kbytes` plus one fetch from each broker, whatever the backlog.
librdkafka's own 64 MiB queue, overshot by a 50 MiB fetch from each broker, made a
replica's memory grow with the backlog it was started on (870 MB on a 5M-record backlog
of Apache Kafka against 510 MB on 1M; README, *Performance*)."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer

from connector.config import Settings
from connector.embedded.harness import produce

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PARTITIONS = 48  # 4 MiB each: under the embedded cluster's 5 MiB a partition
VALUE_BYTES = 4096


def _backlog(bootstrap: str, topic: str, mib_per_partition: int) -> None:
    count = mib_per_partition * MIB // VALUE_BYTES * PARTITIONS
    values = ((None, os.urandom(VALUE_BYTES // 2).hex().encode()) for _ in range(count))  # incompressible
    produce(bootstrap, topic, values, partition_of=lambda i: i % PARTITIONS)


def _largest_queue(stats: list[dict[str, Any]]) -> int:
    """The consumer queue's largest size in the statistics: every partition of a subscribed
    consumer forwards its fetch queue to that one queue, so each reports its size."""
    return max((p["fetchq_size"] for s in stats for t in s.get("topics", {}).values()
                for p in t["partitions"].values()), default=0)


@pytest.mark.parametrize("kafka", ["services", "apache_services"])
def test_the_pre_fetch_queue_is_bounded_whatever_the_backlog(request, kafka):
    services = request.getfixturevalue(kafka)
    topic = f"prefetch_{uuid.uuid4().hex[:8]}"
    services.create_topic(topic, PARTITIONS)
    _backlog(services.bootstrap_servers, topic, 4)  # 192 MiB: three times librdkafka's own bound
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers, "KAFKA_TOPICS": topic,
                                  "DATABASE_URL": services.database_url, "SINK_TABLE": "unused",
                                  "CONNECTOR_NAME": topic})
    stats: list[dict[str, Any]] = []
    consumer = Consumer({**settings.consumer_config(), "statistics.interval.ms": 100,
                         "stats_cb": lambda text: stats.append(json.loads(text))})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while _largest_queue(stats) < 16 * MIB:  # read a record at a time: the queue fills to its bound
            assert time.monotonic() < deadline, f"the queue reached {_largest_queue(stats) / MIB:.1f} MiB in 60 s"
            consumer.poll(0.2)  # also serves the statistics callbacks
        time.sleep(2)  # every fetcher meanwhile tops the queue up as far as it goes
        consumer.poll(0.5)
        brokers = len(consumer.list_topics(topic, timeout=10).brokers)
    finally:
        consumer.close()
    queued, bound = _largest_queue(stats), 16 * MIB + brokers * 16 * MIB
    assert queued <= bound, f"queued {queued / MIB:.1f} MiB; bound {bound / MIB:.0f} MiB"
