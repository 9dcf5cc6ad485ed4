"""The benchmark's runs beyond throughput: latency at a steady rate, memory under a
large backlog, and scale-out over replicas. Each returns a dict for the JSON report.

- latency: on a new topic, after `LEAD_IN_SECONDS` of untimed records at the same rate
  (a new topic's first second of traffic waits on the brokers, see the README), one
  replica (append, memory backend) is caught up; records are produced at a
  steady `rate` per second, each carrying its send time; a poller sees every row become
  visible (every 10 ms) and reports produce -> visible p50/p99, next to the replica's
  commit latency and to the broker's own share: produce -> fetched by a bare consumer
  with the connector's settings reading the same topic meanwhile;
- backlog: append/memory over a topic of `records` (5M by default, on enough partitions
  for the embedded cluster's 5 MiB each); its peak RSS is compared with the 1M run's;
- scale-out: 1, 2, 3 replicas of one pipeline on the same topic; the aggregate rate and
  the exact row count of each;
- rebalance: under a steady produce rate, one replica, then two, three, two and one
  again; per group protocol, the longest gap between two commits of a partition that its
  replica kept across one of its rebalance callbacks (the stall a join or a leave costs
  the partitions it does not move), the other gaps between commits (the usual cadence,
  and pauses no rebalance caused), the longest hand-over of a partition that moved, and
  how long the replicas ran and waited for a CPU.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import psycopg

from benchmarks.data import Workload
from benchmarks.runs import CONSUMER, commit_latencies, connector, cpu_seconds, percentile, produce, replica_env, scalar
from connector.embedded.harness import ConnectorProcess, make_producer, wait_until
from connector.embedded.services import Services

# The settings of each consumer group protocol the rebalance scenario compares.
GROUP_PROTOCOLS = {"eager": {}, "cooperative-sticky": {"KAFKA_PARTITION_ASSIGNMENT_STRATEGY": "cooperative-sticky"},
                   "consumer": {"KAFKA_GROUP_PROTOCOL": "consumer"}}
LATENCY_PARTITIONS = 8
LEAD_IN_SECONDS = 2
LATENCY_DDL = "CREATE TABLE {table} (seq bigint PRIMARY KEY, sent_ms double precision, page text)"


def latency(services: Services, workdir: Path, rate: int, seconds: int, interval_ms: int) -> dict[str, Any]:
    topic, name = f"lat_{uuid.uuid4().hex[:8]}", f"bench-latency-{uuid.uuid4().hex[:6]}"
    table = name.replace("-", "_")
    services.create_topic(topic, LATENCY_PARTITIONS)
    services.sql(LATENCY_DDL.format(table=table))
    producer = make_producer(services.bootstrap_servers)
    _steadily(producer, topic, rate, range(-2, -2 - rate * LEAD_IN_SECONDS, -1))  # the lead-in
    env = replica_env(services, topic, name, CHECKPOINT_INTERVAL_MS=str(interval_ms))
    replica = ConnectorProcess(env, workdir / f"{name}.log").start()
    total = rate * seconds
    bare = _BareConsumer(services.bootstrap_servers, topic, total, seconds + 120)
    try:
        bare.start()
        _send(producer, topic, -1)  # the replica is caught up once this row is visible
        wait_until(lambda: replica.check_alive() or bool(services.sql(f"SELECT 1 FROM {table} WHERE seq = -1")),
                   120, "the replica to join", 0.1)
        wait_until(bare.caught_up.is_set, 60, "the bare consumer to catch up", 0.1)
        seen: dict[int, float] = {}
        poller = threading.Thread(target=_poll_visible, args=(services.database_url, table, total, seen), daemon=True)
        poller.start()
        _steadily(producer, topic, rate, range(total))
        poller.join(seconds + 120)
        bare.join(seconds + 120)
    finally:
        replica.stop(60)
    visible, fetched = sorted(seen.values()), sorted(bare.fetched)
    commits = commit_latencies(replica.output())
    return {"rate": rate, "seconds": seconds, "lead_in_seconds": LEAD_IN_SECONDS,
            "checkpoint_interval_ms": interval_ms, "records": total,
            "visible": len(visible), "visible_ms_p50": percentile(visible, 50), "visible_ms_p99": percentile(visible, 99),
            "fetched_ms_p50": percentile(fetched, 50), "fetched_ms_p99": percentile(fetched, 99),
            "commit_ms_p50": percentile(commits, 50), "commit_ms_p99": percentile(commits, 99)}


def _steadily(producer: Any, topic: str, rate: int, seqs: range) -> None:
    """Send `seqs` at a steady `rate` a second, then wait until all are acknowledged."""
    start = time.monotonic()
    for i, seq in enumerate(seqs):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        _send(producer, topic, seq)
    producer.flush(30)


def _send(producer: Any, topic: str, seq: int) -> None:
    value = orjson.dumps({"seq": seq, "sent_ms": time.time() * 1000, "page": f"/products/{seq % 997}/reviews"})
    producer.produce(topic, value, partition=seq % LATENCY_PARTITIONS)
    producer.poll(0)


class _BareConsumer(threading.Thread):
    """Each record's produce -> fetched ms (`fetched`), read with the connector's own
    consumer settings from the topic's beginning; `caught_up` once it has a record sent
    before the timed ones (left out), so its connections and fetches are set up first."""

    def __init__(self, bootstrap_servers: str, topic: str, total: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.caught_up, self.fetched = threading.Event(), list[float]()
        self._settings = {**CONSUMER, "bootstrap.servers": bootstrap_servers, "group.id": f"bare-{topic}"}
        self._topic, self._total, self._seconds = topic, total, seconds

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer
        from confluent_kafka import TopicPartition as KafkaPartition

        consumer = Consumer(self._settings)
        consumer.assign([KafkaPartition(self._topic, p, OFFSET_BEGINNING) for p in range(LATENCY_PARTITIONS)])
        deadline = time.monotonic() + self._seconds
        try:
            while len(self.fetched) < self._total and time.monotonic() < deadline:
                message = consumer.poll(0.1)  # each record as it comes (consume(n) waits for n or the timeout)
                now = time.time() * 1000
                if message is None or message.error() is not None or (raw := message.value()) is None:
                    continue
                value = orjson.loads(raw)
                if value["seq"] >= 0:
                    self.fetched.append(now - value["sent_ms"])
                else:
                    self.caught_up.set()
        finally:
            consumer.close()


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
              replicas: int, protocol: str) -> dict[str, Any]:
    return {**connector(services, workdir, topic, workload, records, "append", "memory", replicas,
                        GROUP_PROTOCOLS[protocol]), "protocol": protocol}


def rebalance(services: Services, workdir: Path, workload: Workload, protocol: str, partitions: int = 12,
              rate: int = 4000, phase_s: float = 20, interval_ms: int = 100) -> dict[str, Any]:
    """Scaling 1 -> 3 -> 1 under `rate` records/s on `partitions`, a replica joining or
    leaving every `phase_s` (leaving by SIGTERM, as a scale-down does); every record must
    be in the table exactly once. Gaps are between the `committed_at` of two checkpoints
    holding records of a partition."""
    topic, name = f"rebal_{uuid.uuid4().hex[:8]}", f"bench-rebalance-{uuid.uuid4().hex[:6]}"
    table = name.replace("-", "_")
    services.create_topic(topic, partitions)
    services.sql(workload.ddl(table, upsert=False))
    env = replica_env(services, topic, name, CHECKPOINT_INTERVAL_MS=str(interval_ms), **GROUP_PROTOCOLS[protocol])
    stop, sent = threading.Event(), [0]
    producer = threading.Thread(target=_produce_steadily, args=(services, topic, workload, partitions, rate, stop, sent),
                                daemon=True)
    replicas = [ConnectorProcess(env, workdir / f"{name}-0.log").start()]
    running = list(replicas)
    events: list[tuple[str, datetime]] = []
    used: list[tuple[float, float]] = []  # each replica's CPU time and wait for a CPU, read as it leaves
    committed = f"SELECT coalesce(sum(next_offset), 0) FROM eos_connector.offsets WHERE pipeline = '{name}'"

    def retire(replica: ConnectorProcess) -> int:
        """Stop `replica` (SIGTERM), its CPU time and wait read first while it still runs."""
        if replica.alive():
            used.append(cpu_seconds(replica.pid))
        return replica.stop(60)

    def settle() -> None:
        deadline = time.monotonic() + phase_s
        while time.monotonic() < deadline:
            for replica in running:
                replica.check_alive()
            time.sleep(0.2)

    try:
        producer.start()
        wait_until(lambda: replicas[0].check_alive() or scalar(services, committed) > 0, 120, "the first commit", 0.1)
        for i in (1, 2):
            settle()
            events.append((f"join {i + 1}", datetime.now(UTC)))
            replicas.append(ConnectorProcess(env, workdir / f"{name}-{i}.log").start())
            running.append(replicas[-1])
        settle()
        for i in (2, 1):
            events.append((f"leave {i + 1}", datetime.now(UTC)))
            running.remove(replicas[i])
            assert retire(replicas[i]) == 0
            settle()
        stop.set()
        producer.join(60)
        wait_until(lambda: replicas[0].check_alive() or scalar(services, committed) >= sent[0], 120,
                   "every record to be committed", 0.2)
    finally:
        stop.set()
        for replica in replicas:
            retire(replica)
    rows, distinct = services.sql(f"SELECT count(*), count(DISTINCT event_id) FROM {table}")[0]
    assert rows == distinct == sent[0], f"{name}: {rows} rows, {distinct} distinct, {sent[0]} records produced"
    checkpoints = services.sql("SELECT replica, committed_at, offsets FROM eos_connector.checkpoints "
                               "WHERE pipeline = %s ORDER BY committed_at", (name,))
    services.sql(f"DROP TABLE {table}")
    callbacks = _Callbacks.of([r.output() for r in replicas])
    return {"protocol": protocol, "partitions": partitions, "rate": rate, "records": sent[0],
            "checkpoint_interval_ms": interval_ms, "exact": True, **_gaps(checkpoints, callbacks, events, phase_s),
            "replicas_cpu_s": sum(ran for ran, _ in used), "replicas_cpu_wait_s": sum(waited for _, waited in used)}


PRODUCE_TICK_S = 0.005


def _produce_steadily(services: Services, topic: str, workload: Workload, partitions: int, rate: int,
                      stop: threading.Event, sent: list[int]) -> None:
    """`rate` records a second until `stop`, the records due sent every `PRODUCE_TICK_S`:
    a sleep before each record (as `_steadily` sends the latency runs' timed records) cost
    this process about 0.2 core more at 4 000 records/s, on the two cores it measures."""
    producer = make_producer(services.bootstrap_servers)
    start = time.monotonic()
    while not stop.is_set():
        for i in range(sent[0], int((time.monotonic() - start) * rate) + 1):
            producer.produce(topic, workload.value(i), workload.key(i), partition=workload.partition(i, partitions))
            sent[0] = i + 1
        producer.poll(0)
        time.sleep(PRODUCE_TICK_S)
    assert producer.flush(60) == 0


_LOGGED = r"^(\S+ \S+) \w+ \S+ \[\d+\] "


class _Callbacks(NamedTuple):
    """When each replica gave up each partition (revoked or lost), and when it handled
    any rebalance callback (those and assignments), from its log."""

    revoked: dict[tuple[str, int], list[datetime]]
    handled: dict[str, list[datetime]]

    @classmethod
    def of(cls, logs: list[str]) -> _Callbacks:
        callbacks = cls(defaultdict(list), defaultdict(list))
        for log in logs:
            replica = re.search(r"replica (\S+) of pipeline", log)
            name = replica[1] if replica else ""
            for at, kind, names in re.findall(_LOGGED + r"(assigned|revoked|lost) (.*)$", log, re.M):
                when = datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").astimezone()
                callbacks.handled[name].append(when)
                if kind != "assigned":
                    for partition in re.findall(r"\[(\d+)\]", names):
                        callbacks.revoked[(name, int(partition))].append(when)
        return callbacks


def _gaps(checkpoints: list[tuple[Any, ...]], callbacks: _Callbacks, events: list[tuple[str, datetime]],
          phase_s: float) -> dict[str, Any]:
    """Per partition, the gaps between its commits: `unmoved` when the same replica made
    both and did not give the partition up between them, else `moved`. The stall a
    rebalance costs is the longest unmoved gap across a rebalance callback of its replica;
    the longest of all unmoved gaps (a starting replica's CPU, a broker's pause) is
    reported beside it, and the longest gap across a callback after each event."""
    commits: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for replica, at, offsets in checkpoints:
        for r in offsets:
            commits[r["partition"]].append((at, replica))
    unmoved: list[tuple[float, datetime, datetime, int]] = []  # across a rebalance callback of its replica
    other: list[float] = []  # unmoved, with no callback of its replica in between
    moved: list[float] = []
    for partition, partition_commits in commits.items():
        # A revoke's callback commits the partition's last records after logging it: a
        # revoke since the commit before t1 makes the gap a hand-over.
        before = [partition_commits[0][0], *(t for t, _ in partition_commits)]
        for since, ((t1, r1), (t2, r2)) in zip(before, pairwise(partition_commits), strict=False):
            gap = (t2 - t1).total_seconds()
            if r1 != r2 or any(since < at < t2 for at in callbacks.revoked.get((r1, partition), ())):
                moved.append(gap)
            elif any(t1 < at < t2 for at in callbacks.handled.get(r1, ())):
                unmoved.append((gap, t1, t2, partition))
            else:
                other.append(gap)
    longest = max(unmoved, default=None)
    per_event = {what: max((g for g, t1, t2, _ in unmoved
                            if (t1 - at).total_seconds() < phase_s and t2 > at), default=None) for what, at in events}
    return {"unmoved_gap_max_s": longest and longest[0], "unmoved_gaps": len(unmoved),
            "unmoved_gap_max_where": longest and {"partition": longest[3], "from": longest[1].isoformat(),
                                                  "to": longest[2].isoformat()},
            "other_gap_p50_s": percentile(other, 50), "other_gap_max_s": max(other, default=None),
            "moved_gap_max_s": max(moved, default=None), "moves": len(moved),
            "events": {what: at.isoformat() for what, at in events}, "unmoved_gap_max_after": per_event}
