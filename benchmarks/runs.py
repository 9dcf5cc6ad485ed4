"""The connector's runs for the benchmark: the data produced, `eos-connector run`
replicas started on it and measured, and the numbers read from their logs. Used by
benchmarks/bench.py and benchmarks/scenarios.py."""

from __future__ import annotations

import math
import re
import statistics
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.data import Workload
from connector.config import KAFKA_DEFAULTS
from connector.embedded.harness import ConnectorProcess, wait_until
from connector.embedded.services import Services

CONSUMER = {**KAFKA_DEFAULTS, "enable.auto.commit": False}  # the bare consumers: the connector's own settings

UPDATES = "upsert-stored"  # a run mode: upsert into a table that holds every key already


@dataclass(frozen=True)
class UpsertTable:
    """The upsert runs' table: created `WITH (fillfactor = ...)` unless None (the README's
    advice for upsert-heavy tables), and what `upsert-stored` finds in it: `key` (each key
    with user_id 'stale', the rest null: each update outgrows the row it replaces) or `full`
    (each record's own row with user_id 'stale': each update the size of the row it replaces)."""

    fillfactor: int | None = None
    stored_rows: str = "key"


def produce(services: Services, topic: str, workload: Workload, records: int, partitions: int) -> None:
    from confluent_kafka import Producer

    # A generous linger: the mock cluster serves one stored batch per partition per fetch.
    producer = Producer({"bootstrap.servers": services.bootstrap_servers, "linger.ms": 100,
                         "batch.num.messages": 10_000, "enable.idempotence": True, "log_level": 4})
    for i in range(records):
        while True:
            try:
                producer.produce(topic, workload.value(i), workload.key(i), partition=workload.partition(i, partitions))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0, "records left undelivered"


def connector(services: Services, workdir: Path, topic: str, workload: Workload, records: int, mode: str,
              backend: str, replicas: int = 1, settings: dict[str, str] | None = None,
              upserts: UpsertTable = UpsertTable()) -> dict[str, Any]:
    """`eos-connector run` end to end (`replicas` of one pipeline, with `settings` in their
    environment); the rate between the first and the last commit. Fails unless the table
    holds every record exactly once."""
    stored = mode == UPDATES  # upsert into a table that already holds every key: each record an update
    mode = "upsert" if stored else mode
    name = f"bench-{mode}-{backend}-{replicas}-{uuid.uuid4().hex[:6]}"
    table = name.replace("-", "_")
    services.sql(workload.ddl(table, upsert=mode == "upsert", fillfactor=upserts.fillfactor if mode == "upsert" else None))
    if stored:
        _store_keys(services, table, workload, records, upserts.stored_rows)
    env = replica_env(services, topic, name, SINK_MODE=mode, STATE_BACKEND=backend, STATE_DIR=str(workdir / name),
                      **(settings or {}))
    started = [ConnectorProcess(env, workdir / f"{name}-{i}.log").start() for i in range(replicas)]
    committed = f"SELECT coalesce(sum(next_offset), 0) FROM eos_connector.offsets WHERE pipeline = '{name}'"
    try:
        wait_until(lambda: any(r.check_alive() for r in started) or scalar(services, committed) >= records, 900,
                   f"{name} to commit {records} records", 0.5)
        peak_mb = max(peak_rss_mb(r.pid) for r in started)
    finally:
        for replica in started:
            replica.stop(60)
    rows, distinct, stale, text = services.sql(
        f"SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE user_id = 'stale'), "
        f"md5(string_agg(user_id || page, '' ORDER BY event_id)) FROM {table}")[0]
    assert rows == distinct == records and not stale, f"{name}: {rows} rows, {distinct} distinct, {stale} not " \
                                                      f"updated, {records} records produced"
    assert text == workload.text_digest(records), f"{name}: the text columns differ from the records'"
    checkpoints = services.sql("SELECT committed_at, (counts->>'records')::int FROM eos_connector.checkpoints "
                               "WHERE pipeline = %s ORDER BY committed_at", (name,))
    services.sql(f"DROP TABLE {table}")  # checked: its autovacuum must not load the runs after it
    span = (checkpoints[-1][0] - checkpoints[0][0]).total_seconds()
    latencies = [ms for r in started for ms in commit_latencies(r.output())]
    result = {"mode": UPDATES if stored else mode, "backend": backend, "replicas": replicas, "records": records,
              **({"fillfactor": upserts.fillfactor} if mode == "upsert" else {}),
              **({"stored_rows": upserts.stored_rows} if stored else {}),
              "checkpoints": len(checkpoints), "seconds": span, "exact": True,
              "rate": (records - checkpoints[0][1]) / span if span else float("nan"),
              "peak_rss_mb": peak_mb, "commit_ms_p50": percentile(latencies, 50),
              "commit_ms_p99": percentile(latencies, 99)}
    if replicas > 1:
        result.update(steady_rate(checkpoints, [r.output() for r in started]))
    return result


def medians(runs: list[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
    """Each kind of run's median rate over its rounds (in the order the kinds first ran),
    × `limit` and × append/memory's median: single runs on a shared two-core machine are
    too noisy to compare one by one. A run of one checkpoint has no rate and is left out."""
    rates: dict[str, list[float]] = {}
    for run in runs:
        if not math.isnan(run["rate"]):
            rates.setdefault(f"{run['mode']}/{run['backend']}", []).append(run["rate"])
    middle = {kind: statistics.median(found) for kind, found in rates.items()}
    memory = middle.get("append/memory")
    return [{"run": kind, "rounds": len(found), "rate": middle[kind], "rate_min": min(found), "rate_max": max(found),
             "ratio_to_bare_limit": middle[kind] / limit,
             **({"ratio_to_append_memory": middle[kind] / memory} if memory and kind != "append/memory" else {})}
            for kind, found in rates.items()]


def _store_keys(services: Services, table: str, workload: Workload, records: int, rows: str) -> None:
    """Every key of the records into `table` before the run, with user_id 'stale' (`rows`: UpsertTable's)."""
    if rows == "key":
        services.sql(f"INSERT INTO {table} (event_id, user_id) SELECT g, 'stale' FROM generate_series(0, {records - 1}) g")
        return
    user_id = workload.columns.index("user_id")
    with psycopg.connect(services.database_url) as conn, conn.cursor() as cur, \
            cur.copy(f"COPY {table} ({', '.join(workload.columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(workload.types))
        for i in range(records):
            row = list(workload.row(i))
            row[user_id] = "stale"
            copy.write_row(row)


def steady_rate(checkpoints: list[tuple[Any, ...]], logs: list[str]) -> dict[str, Any]:
    """The aggregate rate once every replica holds its partitions: from the group's last
    assignment to the last commit (replicas join one by one, and each join stops the
    group for a rebalance first)."""
    assigned = [max(re.findall(r"^(\S+ \S+) INFO connector.kafka.source \[\d+\] assigned", log, re.M), default="")
                for log in logs]
    if not all(assigned):
        return {}
    formed = datetime.strptime(max(assigned), "%Y-%m-%d %H:%M:%S,%f").astimezone()
    after = [(at, n) for at, n in checkpoints if at > formed]
    span = (checkpoints[-1][0] - formed).total_seconds()
    return {"steady_rate": sum(n for _, n in after) / span if after and span > 0 else None,
            "rebalanced_s": (formed - checkpoints[0][0]).total_seconds()}


def replica_env(services: Services, topic: str, name: str, **extra: str) -> dict[str, str]:
    """A replica's environment: pipeline `name` reading `topic` into the table of the same name."""
    return {"KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers, "KAFKA_TOPICS": topic,
            "DATABASE_URL": services.database_url, "SINK_TABLE": name.replace("-", "_"), "CONNECTOR_NAME": name,
            "HTTP_PORT": "0", **extra}


def commit_latencies(log_output: str) -> list[float]:
    """Each commit's milliseconds, from the replica's `checkpoint N committed: …, X ms` lines."""
    return [float(ms) for ms in re.findall(r"checkpoint \d+ committed: .*, ([\d.]+) ms", log_output)]


def scalar(services: Services, query: str) -> int:
    try:
        return int(services.sql(query)[0][0])
    except psycopg.Error:  # not migrated yet
        return 0


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """A live process's CPU time and its time runnable but waiting for a CPU, summed over
    the threads it has (Linux's schedstat; a thread that ended before is not counted)."""
    ran = waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            run_ns, wait_ns, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
        ran, waited = ran + int(run_ns), waited + int(wait_ns)
    return ran / 1e9, waited / 1e9


def percentile(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
