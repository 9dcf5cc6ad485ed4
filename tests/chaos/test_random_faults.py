"""Seeded random faults while rows flow: SIGKILLs at random moments and brokers taken
down and brought back, on a three-broker cluster and a table without a primary key."""

from __future__ import annotations

import random
import threading
import time

import orjson
import pytest

from connector.embedded.harness import wait_until

pytestmark = pytest.mark.chaos
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL, user_id text, at timestamptz)"


def events(n: int) -> list[tuple[bytes, bytes]]:
    return [(f"u{i % 31}".encode(), orjson.dumps({"event_id": i, "user_id": f"u{i % 31}",
                                                   "at": f"2026-11-22T10:00:{i % 60:02d}Z"}))
            for i in range(n)]


@pytest.mark.parametrize("seed, backend", [(1, "memory"), (2, "filesystem"), (3, "postgres")])
def test_kills_and_broker_bounces_while_flowing(make_pipeline, needs_mock_cluster, seed, backend):
    """3 SIGKILLs after 20% progress and 2 broker bounces during steady flow: the table
    ends with every record exactly once."""
    rng = random.Random(seed)
    n, partitions = 6000, 6
    p = make_pipeline(DDL, partitions=partitions)
    settings = {"STATE_BACKEND": backend, "CHECKPOINT_INTERVAL_MS": "250", "CHECKPOINT_MAX_RECORDS": "500"}
    all_events = events(n)
    chunks = [all_events[i:i + 300] for i in range(0, n, 300)]

    def produce_steadily() -> None:
        for chunk in chunks:
            p.produce(chunk)
            time.sleep(0.3)

    producer = threading.Thread(target=produce_steadily)
    replica = p.start(**settings)
    producer.start()
    faults = ["kill", "kill", "kill", "bounce", "bounce"]
    rng.shuffle(faults)
    wait_until(lambda: p.count() >= n // 5, 90, "20% progress")
    for fault in faults:
        target = min(p.count() + rng.randint(n // 20, n // 10), n - 1)
        wait_until(lambda: p.count() >= target, 90, f"{target} rows", 0.05)
        time.sleep(rng.uniform(0, 0.3))  # anywhere in the checkpoint cycle
        if fault == "kill":
            replica.kill()
            replica = p.start(**settings)
        else:
            broker = rng.randint(1, 3)
            needs_mock_cluster.broker_down(broker)
            time.sleep(rng.uniform(1.0, 2.5))
            needs_mock_cluster.broker_up(broker)
    producer.join()
    p.wait_for_rows(n, 120, replica)
    wait_until(lambda: p.offsets() == p.watermarks(), 60, "offsets to reach the watermarks")
    assert replica.stop() == 0
    p.assert_exact(n)
