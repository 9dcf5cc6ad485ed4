"""The benchmark's runs beyond throughput: latency at a steady rate, memory under a
large backlog, and scale-out over replicas. Each returns a dict for the JSON report.

- latency: one replica (append, memory backend) is caught up; records are produced at a
  steady `rate` per second, each carrying its send time; a poller sees every row become
  visible (every 10 ms) and reports produce -> visible p50/p99, next to the replica's
  commit latency;
- backlog: append/memory over a topic of `records` (5M by default, on enough partitions
  for the embedded cluster's 5 MiB each); its peak RSS is compared with the 1M run's;
- scale-out: 1, 2, 3 replicas of one pipeline on the same topic; the aggregate rate and
  the exact row count of each.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg

from benchmarks.data import Workload
from benchmarks.runs import commit_latencies, connector, percentile, produce, replica_env
from connector.embedded.harness import ConnectorProcess, make_producer, wait_until
from connector.embedded.services import Services

LATENCY_DDL = "CREATE TABLE {table} (seq bigint PRIMARY KEY, sent_ms double precision, page text)"


def latency(services: Services, workdir: Path, rate: int, seconds: int, interval_ms: int) -> dict[str, Any]:
    topic, name = f"lat_{uuid.uuid4().hex[:8]}", f"bench-latency-{uuid.uuid4().hex[:6]}"
    table = name.replace("-", "_")
    services.create_topic(topic, 8)
    services.sql(LATENCY_DDL.format(table=table))
    env = replica_env(services, topic, name, CHECKPOINT_INTERVAL_MS=str(interval_ms))
    replica = ConnectorProcess(env, workdir / f"{name}.log").start()
    producer = make_producer(services.bootstrap_servers)
    try:
        _send(producer, topic, -1)  # the replica is caught up once this row is visible
        wait_until(lambda: replica.check_alive() or bool(services.sql(f"SELECT 1 FROM {table}")), 120,
                   "the replica to join", 0.1)
        seen: dict[int, float] = {}
        total = rate * seconds
        poller = threading.Thread(target=_poll_visible, args=(services.database_url, table, total, seen), daemon=True)
        poller.start()
        start = time.monotonic()
        for seq in range(total):
            time.sleep(max(0.0, start + seq / rate - time.monotonic()))
            _send(producer, topic, seq)
        producer.flush(30)
        poller.join(seconds + 120)
    finally:
        replica.stop(60)
    visible = sorted(seen.values())
    commits = commit_latencies(replica.output())
    return {"rate": rate, "seconds": seconds, "checkpoint_interval_ms": interval_ms, "records": total,
            "visible": len(visible), "visible_ms_p50": percentile(visible, 50), "visible_ms_p99": percentile(visible, 99),
            "commit_ms_p50": percentile(commits, 50), "commit_ms_p99": percentile(commits, 99)}


def _send(producer: Any, topic: str, seq: int) -> None:
    value = orjson.dumps({"seq": seq, "sent_ms": time.time() * 1000, "page": f"/products/{seq % 997}/reviews"})
    producer.produce(topic, value, partition=seq % 8)
    producer.poll(0)


def _poll_visible(url: str, table: str, total: int, seen: dict[int, float]) -> None:
    """Every 10 ms: the rows that became visible since, each with its produce -> visible ms."""
    low = 0  # every sequence number below it has been seen
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + total / 100 + 300
        while low < total and time.monotonic() < deadline:
            rows = conn.execute(f"SELECT seq, sent_ms FROM {table} WHERE seq >= %s", (low,)).fetchall()
            now = time.time() * 1000
            for seq, sent_ms in rows:
                seen.setdefault(seq, now - sent_ms)
            while low in seen:
                low += 1
            time.sleep(0.01)


def backlog(services: Services, workdir: Path, workload: Workload, records: int, partitions: int) -> dict[str, Any]:
    topic = f"backlog_{uuid.uuid4().hex[:8]}"
    services.create_topic(topic, partitions)
    produce(services, topic, workload, records, partitions)
    result = connector(services, workdir, topic, workload, records, "append", "memory")
    return {**result, "partitions": partitions}


def scale_out(services: Services, workdir: Path, topic: str, workload: Workload, records: int,
              replicas: int) -> dict[str, Any]:
    return connector(services, workdir, topic, workload, records, "append", "memory", replicas)
