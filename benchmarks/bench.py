"""eos-connector against the bare limits, measured in one run on the same data.

    python -m benchmarks.bench [--kafka embedded|apache] [--records 1000000] [--partitions 64]
                               [--text realistic|ascii] [--table narrow|wide|loose] [--json bench.json]
                               [--rounds 1] [--skip-floor] [--latency-seconds 30] [--latency-intervals 1000,100]
                               [--latency-warmup-seconds 60]
                               [--backlog-records 5000000] [--replicas 1,2,3]
                               [--group-protocol eager] [--rebalance eager,cooperative-sticky,consumer]
                               [--rebalance-step-seconds 20] [--stored-rows key|full] [--upsert-fillfactor N]

Services: pgserver's PostgreSQL with the librdkafka mock cluster (`--kafka embedded`, the
default) or with a real Apache Kafka KRaft cluster of three nodes on loopback (`--kafka
apache`: replication factor 3, min.insync.replicas 2; connector/embedded/apache.py), or
external ones with TEST_DATABASE_URL and TEST_KAFKA_BOOTSTRAP_SERVERS (connector/embedded/services.py).
The bare limits and the connector always run against the same broker in one run.
One topic of `--records` JSON records is produced once (benchmarks/data.py: realistic text
by default — non-ASCII letters, quotes, backslashes, tabs and newlines, JSON with `\\u`
escapes and raw UTF-8 — or `--text ascii`; the narrow table of five columns, `--table
wide`, twenty-one, or `--table loose`: the narrow one with an identity and a `DEFAULT now()`
column the records leave out, and records with a field no column takes); then, each on its
own consumer group and table:

- bare consume+decode: a confluent-kafka consumer with the connector's own settings
  (connector/config.py's KAFKA_DEFAULTS), `consume(10000)` batches, every value decoded
  with orjson;
- bare COPY: the same rows, decoded ahead into their columns' Python types, in a binary
  COPY by psycopg into the same table (100 000 rows per COPY and transaction; after an
  untimed warm-up pass); beside it, not limits: the text-format COPY of the same rows,
  and the binary COPY data encoded ahead (untimed), so that only PostgreSQL's reading and
  storing of it is timed — the database's own ceiling, which shows where psycopg's
  encoding of each value, not the database, bounds the bare COPY (the wide table);
- eos-connector run, end to end: append with each state backend, and upsert (into an
  empty table, and `upsert-stored`: into one that holds every key already, by default as
  the key and user_id 'stale' alone, with `--stored-rows full` as each record's own row;
  `--upsert-fillfactor` sets the upsert tables' fillfactor); the rate is
  measured between the first and the last commit (first row visible -> last row visible,
  the first checkpoint's records left out; a checkpoint's `committed_at` is its commit
  transaction's start, so both ends shift by about one commit), plus peak RSS and commit
  latency p50/p99 (steps 3-5 of each checkpoint) from the replica's own log lines; every
  run must leave each record in the table exactly once, or the benchmark fails;
- every table is dropped once its run is measured and checked, so the autovacuum of one
  run's million rows does not load the runs after it;
- the floor: what a user would write without the connector — a consume loop, one
  `executemany` INSERT (append) or INSERT … ON CONFLICT (upsert) per batch, the database
  commit, then the Kafka commit (at-least-once);
- benchmarks/scenarios.py: scale-out over 1, 2 and 3 replicas (`--group-protocol`),
  produce -> visible latency at a steady rate (beside produce -> fetched by a bare consumer
  with the connector's settings, the broker's share of it; after an untimed run of the same
  at the same rate, `latency_warmup` in the JSON: a freshly started Kafka JVM compiles its
  hot code under the load's first minute), peak RSS under a 5M-record backlog, and the
  stall of unmoved partitions while scaling 1 -> 3 -> 1 under each of `--rebalance`'s group
  protocols (`consumer`, KIP-848, on Apache Kafka only).

Prints a table of records/s and ratios to min(bare consume+decode, bare binary COPY) and
writes the same as JSON. With `--rounds N` the connector's runs are made N times, round
after round (so a drift of the machine weighs on every kind alike), and each kind's
median is reported beside its runs, also as × append/memory's median. Timings are
wall-clock on whatever else the machine is doing: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.copy import FileWriter
from psycopg.types.json import Jsonb

from benchmarks import scenarios
from benchmarks.data import Workload
from benchmarks.runs import CONSUMER, UPDATES, UpsertTable, connector, medians, produce
from connector.embedded.services import Services, services_from_env


def records_in(services: Services, topic: str, partitions: int) -> int:
    """The records the topic holds (high - low watermark): fewer than produced when the
    embedded cluster's 5 MiB a partition made it drop the oldest."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": services.bootstrap_servers, "group.id": "bench-watermarks"})
    try:
        ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in range(partitions)]
        return sum(high - low for low, high in ends)
    finally:
        consumer.close()


def bare_consume(services: Services, topic: str, records: int) -> dict[str, Any]:
    """Read and decode every record; the rate from the first record to the last."""
    from confluent_kafka import Consumer

    consumer = Consumer({**CONSUMER, "bootstrap.servers": services.bootstrap_servers, "group.id": f"bare-{uuid.uuid4()}"})
    consumer.subscribe([topic])
    seen, first = 0, None
    loads = orjson.loads
    while seen < records:
        batch = consumer.consume(10_000, 1.0)
        if batch and first is None:
            first = time.perf_counter()
        for message in batch:
            if message.error() is None:
                loads(message.value())
                seen += 1
    elapsed = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    return {"records": seen, "seconds": elapsed, "rate": seen / elapsed}


def bare_copy(services: Services, table: str, workload: Workload, data: list[tuple[Any, ...]],
              form: str) -> dict[str, Any]:
    """COPY `data` into a new table, 100 000 rows per COPY and transaction, as `form`:
    `binary` (each column's type set) or `text`, psycopg encoding each row; or `ingest`:
    the binary COPY data encoded ahead, untimed, so only PostgreSQL's reading and storing
    of it is timed (its ceiling, not a limit a pipeline decoding JSON reaches). A first,
    untimed pass into a scratch table warms the server (a fresh cluster's first large
    write is slower while it creates WAL segments), so the limit is not understated."""
    binary = form != "text"
    statement = f"COPY {{}} ({', '.join(workload.columns)}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
    chunks = [data[start:start + 100_000] for start in range(0, len(data), 100_000)]

    def write(copy: Any, rows: list[tuple[Any, ...]]) -> None:
        if binary:
            copy.set_types(list(workload.types))
        for row in rows:
            copy.write_row(row)

    encoded: list[bytes] = []
    if form == "ingest":
        with psycopg.connect(services.database_url) as conn:
            for rows in chunks:
                buffer = io.BytesIO()
                with conn.cursor() as cur, psycopg.Copy(cur, binary=True, writer=FileWriter(buffer)) as copy:
                    write(copy, rows)  # into the buffer: no COPY runs
                encoded.append(buffer.getvalue())

    def copy_into(name: str) -> float:
        services.sql(workload.ddl(name, upsert=False))
        started = time.perf_counter()
        with psycopg.connect(services.database_url) as conn:
            for i, rows in enumerate(chunks):
                with conn.cursor() as cur, cur.copy(statement.format(name)) as copy:
                    if encoded:
                        copy.write(encoded[i])
                    else:
                        write(copy, rows)
                conn.commit()
        return time.perf_counter() - started

    copy_into(f"{table}_warm_up")
    services.sql(f"DROP TABLE {table}_warm_up")
    elapsed = copy_into(table)
    services.sql(f"DROP TABLE {table}")
    return {"format": form, "records": len(data), "seconds": elapsed, "rate": len(data) / elapsed}


def floor(services: Services, topic: str, workload: Workload, records: int, mode: str) -> dict[str, Any]:
    """What a user would write: consume a batch, executemany, commit the database, then Kafka."""
    from confluent_kafka import Consumer

    table = f"floor_{mode}_{uuid.uuid4().hex[:6]}"
    services.sql(workload.ddl(table, upsert=mode == "upsert"))
    columns = workload.columns
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    if mode == "upsert":
        insert += " ON CONFLICT (event_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    consumer = Consumer({**CONSUMER, "bootstrap.servers": services.bootstrap_servers, "group.id": table})
    consumer.subscribe([topic])
    seen, first = 0, None
    with psycopg.connect(services.database_url) as conn:
        while seen < records:
            batch = [m for m in consumer.consume(10_000, 1.0) if m.error() is None]
            if not batch:
                continue
            first = first or time.perf_counter()
            docs = [orjson.loads(m.value()) for m in batch]
            with conn.cursor() as cur:
                cur.executemany(insert, [tuple(Jsonb(d[c]) if type(d[c]) is dict else d[c] for c in columns)
                                         for d in docs])
            conn.commit()
            consumer.commit(asynchronous=False)
            seen += len(batch)
    elapsed = time.perf_counter() - (first or time.perf_counter())
    consumer.close()
    services.sql(f"DROP TABLE {table}")
    return {"mode": mode, "records": seen, "seconds": elapsed, "rate": seen / elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--kafka", choices=("embedded", "apache"),
                        help="the broker: the librdkafka mock cluster, or real Apache Kafka (3 KRaft nodes); "
                             "default: EOS_TEST_BACKEND's, else embedded")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--text", choices=("realistic", "ascii"), default="realistic",
                        help="the records' text: non-ASCII letters, quotes, backslashes, tabs and newlines "
                             "(realistic), or plain ASCII")
    parser.add_argument("--table", choices=("narrow", "wide", "loose"), default="narrow",
                        help="five columns, twenty-one of every common type, or five and two the records leave out "
                             "(the records with a field no column takes)")
    parser.add_argument("--keys", action="store_true",
                        help="key each record by its event_id and let the producer's partitioner place it "
                             "(default: no key, record i in partition i mod --partitions)")
    parser.add_argument("--json", type=Path, default=Path("bench.json"))
    parser.add_argument("--runs", default=f"append/memory,append/filesystem,append/postgres,upsert/memory,"
                                          f"{UPDATES}/memory",
                        help=f"the connector's runs, comma-separated mode/backend (mode {UPDATES}: upsert into a "
                             f"table that holds every key already)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run --runs this many times, round after round, and report each run's median rate "
                             "(× bare limit, × append/memory's median): one run's rate moves by about a tenth")
    parser.add_argument("--upsert-fillfactor", type=int, choices=range(10, 101), metavar="10..100",
                        help="create the upsert runs' tables WITH (fillfactor = N) (default: as PostgreSQL does, 100)")
    parser.add_argument("--stored-rows", choices=("key", "full"), default="key",
                        help=f"what {UPDATES}'s table holds before: each key with user_id 'stale' and the rest null, "
                             f"or each record's own row with user_id 'stale'")
    parser.add_argument("--skip-floor", action="store_true", help="leave out the user-written floor (slow)")
    parser.add_argument("--latency-seconds", type=int, default=30, help="steady-rate run length (0: none)")
    parser.add_argument("--latency-rate", type=int, default=1000)
    parser.add_argument("--latency-intervals", default="1000,100",
                        help="CHECKPOINT_INTERVAL_MS of the steady-rate runs, comma-separated")
    parser.add_argument("--latency-warmup-seconds", type=int, default=60,
                        help="an untimed steady-rate run before them, at the first interval (0: none), so the broker "
                             "and the database are measured warm, as a long-running deployment has them")
    parser.add_argument("--backlog-records", type=int, default=5_000_000, help="memory run's backlog (0: none)")
    parser.add_argument("--backlog-partitions", type=int, default=256)
    parser.add_argument("--replicas", default="1,2,3", help="scale-out runs, comma-separated ('': none)")
    parser.add_argument("--group-protocol", choices=sorted(scenarios.GROUP_PROTOCOLS), default="eager",
                        help="the scale-out runs' group protocol: eager range, cooperative-sticky, or consumer "
                             "(KIP-848)")
    parser.add_argument("--rebalance", default="eager,cooperative-sticky,consumer",
                        help="group protocols of the 1 -> 3 -> 1 scaling runs, comma-separated ('': none; consumer "
                             "on Apache Kafka only)")
    parser.add_argument("--rebalance-step-seconds", type=float, default=20,
                        help="seconds between the scaling runs' joins and leaves")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least one round")
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                                          f"{platform.python_version()}", "records": args.records,
                               "partitions": args.partitions, "text": args.text, "table": args.table, "keyed": args.keys,
                               "kafka": args.kafka or os.environ.get("EOS_TEST_BACKEND", "embedded")}
    if args.kafka == "apache":
        from connector.embedded.kafka_node import KAFKA_VERSION

        results["kafka"] = f"Apache Kafka {KAFKA_VERSION}, 3 KRaft nodes, replication factor 3"
    workload = Workload(args.text, args.table, args.keys)
    with services_from_env(args.kafka) as services, tempfile.TemporaryDirectory(prefix="eos-bench-") as tmp:
        workdir = Path(tmp)
        topic = f"bench_{uuid.uuid4().hex[:8]}"
        services.create_topic(topic, args.partitions)
        t0 = time.perf_counter()
        produce(services, topic, workload, args.records, args.partitions)
        in_topic = records_in(services, topic, args.partitions)
        assert in_topic == args.records, f"the topic holds {in_topic} records, not {args.records} (more partitions: " \
                                         f"the embedded cluster keeps 5 MiB a partition)"
        print(f"produced {args.records} {'keyed ' if args.keys else ''}records ({args.text} text, {args.table} table) "
              f"into {args.partitions} partitions in {time.perf_counter() - t0:.1f}s", flush=True)
        limit = _bare_limits(services, topic, workload, args.records, results)
        runs = [tuple(run.split("/")) for run in args.runs.split(",")]
        upserts = UpsertTable(args.upsert_fillfactor, args.stored_rows)
        results["connector"] = [{**_show(f"eos-connector {m}/{b}",
                                         connector(services, workdir, topic, workload, args.records, m, b,
                                                   upserts=upserts), limit), "round": k}
                                for k in range(1, args.rounds + 1) for m, b in runs]
        if args.rounds > 1:
            results["medians"] = [_show_medians(m, args.rounds) for m in medians(results["connector"], limit)]
        if not args.skip_floor:
            results["floor"] = [_show(f"user-written floor {m}", floor(services, topic, workload, args.records, m),
                                      limit) for m in ("append", "upsert")]
        _scenarios(args, services, workdir, topic, workload, results)
    args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"bare limit min(consume+decode, binary COPY) = {limit:,.0f} records/s; written to {args.json}")
    return 0


def _bare_limits(services: Services, topic: str, workload: Workload, records: int, results: dict[str, Any]) -> float:
    """The bare limits, recorded in `results`; returns min(consume+decode, binary COPY)."""
    results["bare_consume_decode"] = _show("bare consume+decode", bare_consume(services, topic, records))
    data = [workload.row(i) for i in range(records)]
    for key, what, form in (("bare_copy", "bare binary COPY", "binary"),
                            ("bare_copy_text", "bare text COPY (not a limit)", "text"),
                            ("bare_copy_ingest", "PostgreSQL's ingest (not a limit)", "ingest")):
        results[key] = _show(what, bare_copy(services, f"bare_{uuid.uuid4().hex[:6]}", workload, data, form))
    limit: float = min(results["bare_consume_decode"]["rate"], results["bare_copy"]["rate"])
    results["bare_limit_rate"] = limit
    return limit


def _scenarios(args: argparse.Namespace, services: Services, workdir: Path, topic: str, workload: Workload,
               results: dict[str, Any]) -> None:
    limit = results["bare_limit_rate"]
    for count in [int(n) for n in args.replicas.split(",") if n.strip()]:
        run = scenarios.scale_out(services, workdir, topic, workload, args.records, count, args.group_protocol)
        results.setdefault("scale_out", []).append(_show(f"eos-connector x{count} replicas ({args.group_protocol})",
                                                         run, limit))
    for protocol in [p for p in args.rebalance.split(",") if p.strip()]:
        if protocol == "consumer" and args.kafka != "apache":
            print("rebalance under the consumer protocol (KIP-848): Apache Kafka only (--kafka apache)", flush=True)
            continue
        run = scenarios.rebalance(services, workdir, workload, protocol, phase_s=args.rebalance_step_seconds)
        after = ", ".join(f"{what} {gap:.2f}" for what, gap in run["unmoved_gap_max_after"].items() if gap is not None)
        print(f"rebalance 1 -> 3 -> 1, {protocol}: longest gap between commits of an unmoved partition across a "
              f"rebalance of its replica {run['unmoved_gap_max_s'] or 0:.2f} s over {run['unmoved_gaps']} ({after}); "
              f"other gaps p50 {run['other_gap_p50_s']:.2f} s, max {run['other_gap_max_s']:.2f} s; longest hand-over "
              f"{run['moved_gap_max_s'] or 0:.2f} s over {run['moves']} moves; {run['records']} records exactly once; "
              f"the replicas waited {run['replicas_cpu_wait_s']:.1f} s for a CPU, ran {run['replicas_cpu_s']:.1f} s",
              flush=True)
        results.setdefault("rebalance", []).append(run)
    intervals = [int(n) for n in args.latency_intervals.split(",") if n.strip()] if args.latency_seconds else []
    if intervals and args.latency_warmup_seconds:
        run = scenarios.latency(services, workdir, args.latency_rate, args.latency_warmup_seconds, intervals[0])
        results["latency_warmup"] = _show_latency("warm-up, not a result: ", run)
    for interval in intervals:
        run = scenarios.latency(services, workdir, args.latency_rate, args.latency_seconds, interval)
        results.setdefault("latency", []).append(_show_latency("", run))
    if args.backlog_records:
        run = _show(f"backlog {args.backlog_records:,} append/memory",
                    scenarios.backlog(services, workdir, workload, args.backlog_records, args.backlog_partitions), limit)
        results["backlog"] = run
        same = [r for r in results["connector"] if (r["mode"], r["backend"]) == ("append", "memory")]
        if same:
            base = same[0]["peak_rss_mb"]
            run["peak_rss_vs_default_run"] = run["peak_rss_mb"] / base
            print(f"peak RSS {run['peak_rss_mb']:.0f} MB with a {args.backlog_records:,} backlog vs {base:.0f} MB "
                  f"with {args.records:,}: {run['peak_rss_vs_default_run']:.2f}x", flush=True)


def _show_medians(median: dict[str, Any], rounds: int) -> dict[str, Any]:
    versus = median.get("ratio_to_append_memory")
    print(f"median of {rounds} rounds {median['run']:<19} {median['rate']:>10,.0f} records/s  "
          f"{median['ratio_to_bare_limit']:.2f} x bare limit"
          f"{f'  {versus:.2f} x append/memory' if versus else ''}  (runs {median['rate_min']:,.0f}"
          f"-{median['rate_max']:,.0f})", flush=True)
    return median


def _show_latency(what: str, run: dict[str, Any]) -> dict[str, Any]:
    print(f"{what}produce -> visible at {run['rate']} records/s, CHECKPOINT_INTERVAL_MS="
          f"{run['checkpoint_interval_ms']}: p50 {run['visible_ms_p50']:.0f} ms, p99 {run['visible_ms_p99']:.0f} ms "
          f"({run['visible']}/{run['records']} seen); commit p50 {run['commit_ms_p50']:.0f} ms, p99 "
          f"{run['commit_ms_p99']:.0f} ms; the broker's share, produce -> fetched by a bare consumer: p50 "
          f"{run['fetched_ms_p50']:.0f} ms, p99 {run['fetched_ms_p99']:.0f} ms", flush=True)
    return run


def _show(what: str, result: dict[str, Any], limit: float | None = None) -> dict[str, Any]:
    if limit:
        result["ratio_to_bare_limit"] = result["rate"] / limit
    extra = "".join(f"  {k} {v:.1f}" if isinstance(v, float) else "" for k, v in result.items()
                    if k in ("peak_rss_mb", "commit_ms_p50", "commit_ms_p99", "steady_rate", "rebalanced_s")
                    and v is not None)
    ratio = f"  {result['ratio_to_bare_limit']:.2f} x bare limit" if limit else ""
    print(f"{what:<36} {result['rate']:>10,.0f} records/s{ratio}{extra}", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
