"""The seeded chaos runner: real `eos-connector run` replicas, real PostgreSQL, a real
Kafka-protocol cluster, and faults injected while records flow.

A run (one `Scenario`, fully determined by its seed) produces `records` records at a
steady rate into a fresh topic and table, starts one replica, and at random points
between 20% and 90% of committed progress injects its faults — or, for an `early`
scenario, from the first record on (a new pipeline whose partitions have no offsets
rows yet, its first checkpoints) — drawn from:

    kill          SIGKILL a replica, start it again on the same host (same STATE_DIR)
    leader_kill   (real Kafka) SIGKILL the broker leading a random partition, restart it 1-3 s later
    coordinator_kill  (real Kafka) SIGKILL the group coordinator's broker, restart it 1-3 s later
    broker_freeze (real Kafka) SIGSTOP a broker past its session with the controller, SIGCONT
    term          SIGTERM a replica (it must exit 0), start it again
    zombie        SIGSTOP a replica past the group session timeout, then SIGCONT (a second
                  replica is started first if it is alone, so its partitions move)
    scale         1 -> 3 replicas, or back 3 -> 1 (SIGTERM), so partitions move repeatedly
    bounce        a Kafka broker down for 1-3 s, then up
    kafka_errors  the next Fetch / OffsetCommit / JoinGroup / SyncGroup / Heartbeat
                  requests fail with retriable, rebalance or fencing error codes
    pg_restart    PostgreSQL restarted (fast shutdown: every session cut)
    pg_terminate  pg_terminate_backend() on every connector session
    lock          a SHARE lock on the target table held past CHECKPOINT_TIMEOUT_MS, so the
                  commit's statement_timeout fires and the checkpoint is retried

After the last record is committed and every replica stopped with SIGTERM (exit 0),
the table is checked against what was produced:

    append     a table without a primary key: the exact multiset of event IDs
    upsert     the final row per key is the key's last record in partition order
               (tombstones delete)
    aggregate  per user per minute visit counts with `visits = visits + excluded.visits`:
               each count equals the number of events produced for it

Command line (from the repository root; the same services as the tests, see
tests/services.py):

    python -m tests.chaos.runner --runs 30 --records 100000 --seed 1 --json chaos.json

prints one line per run and a summary (runs, records, faults by kind, duplicates, lost,
elapsed) and exits non-zero unless every run is exact.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg

from connector.embedded.apache import TEST_SETTINGS, ApacheKafka
from connector.embedded.harness import FAST_GROUP, ConnectorProcess, ContainerReplica, make_producer, wait_until
from connector.embedded.services import Services, services_from_env
from tests.services import Pipeline, new_pipeline

MODES = ("append", "upsert", "aggregate")
BACKENDS = ("memory", "filesystem", "postgres")
ASSIGNORS = ("range", "cooperative-sticky")
FAULTS = ("kill", "term", "zombie", "scale", "bounce", "kafka_errors", "pg_restart", "pg_terminate", "lock")
# On real Apache Kafka: no request-error injection, but real broker processes to kill.
BROKER_FAULTS = ("leader_kill", "coordinator_kill", "broker_freeze")
FAULTS_ON_APACHE = tuple(f for f in FAULTS if f != "kafka_errors") + BROKER_FAULTS
# Every long run on real Kafka has these besides its replica kills, plus random others.
REQUIRED_ON_APACHE = ("leader_kill", "coordinator_kill", "scale", "pg_restart")
# Error codes the next requests of each API fail with: retriable (6 NOT_LEADER_OR_FOLLOWER,
# 7 REQUEST_TIMED_OUT, 14 COORDINATOR_LOAD_IN_PROGRESS, 15 COORDINATOR_NOT_AVAILABLE,
# 16 NOT_COORDINATOR), a forced rebalance (27 REBALANCE_IN_PROGRESS) and a fenced member
# (22 ILLEGAL_GENERATION, 25 UNKNOWN_MEMBER_ID: its partitions are lost).
REQUEST_ERRORS = {"Fetch": [6, 7], "OffsetCommit": [7, 15, 16, 27], "JoinGroup": [14, 15, 16],
                  "SyncGroup": [15, 16, 27], "Heartbeat": [16, 22, 25, 27]}
SESSION_TIMEOUT_S = int(FAST_GROUP["KAFKA_SESSION_TIMEOUT_MS"]) / 1000
BROKER_SESSION_S = int(TEST_SETTINGS["broker.session.timeout.ms"]) / 1000
CHECKPOINT_TIMEOUT_MS = 2000
REPLICA_SETTINGS = {
    "CHECKPOINT_INTERVAL_MS": "300", "CHECKPOINT_MAX_RECORDS": "2000",
    "CHECKPOINT_TIMEOUT_MS": str(CHECKPOINT_TIMEOUT_MS),
    "RESTART_STRATEGY": "attempts=30,initial=100ms,max=2s", "SHUTDOWN_TIMEOUT_MS": "60000",
}
# What replica logs say when a fault took effect (lines counted per run, to show faults bit).
OBSERVED = {"retries": r"; retry \d+ of", "statement timeouts": r"canceling statement due to statement timeout",
            "fenced commits": r"checkpoint \d+ fenced: \d+ records", "re-commits": r"re-committing pending checkpoint",
            "partitions lost": r"lost \d+ partition"}


# -- workloads: what is produced, the table it lands in, and the check --------------------------
@dataclass(frozen=True)
class Workload:
    ddl: str
    settings: dict[str, str]
    message: Callable[[int], tuple[bytes, bytes | None]]
    check: Callable[[Pipeline, list[tuple[bytes | None, bytes | None]]], dict[str, int]]


def _append_message(i: int) -> tuple[bytes, bytes | None]:
    user = f"u{i % 97}"
    return user.encode(), orjson.dumps({"event_id": i, "user_id": user, "at": f"2026-11-22T10:{i % 60:02d}:00Z"})


def _append_check(p: Pipeline, source: list[tuple[bytes | None, bytes | None]]) -> dict[str, int]:
    expected = collections.Counter(orjson.loads(v)["event_id"] for _, v in source if v is not None)
    actual = collections.Counter(r[0] for r in p.rows("event_id"))
    return _compare(expected, actual)


def _compare(expected: collections.Counter[Any], actual: collections.Counter[Any] | dict[Any, int]) -> dict[str, int]:
    """Multisets: each source record's effect once (duplicates: extra effects; lost:
    missing ones; wrong: effects of no source record)."""
    return {"rows": sum(actual.values()),
            "duplicates": sum(max(0, n - expected.get(k, 0)) for k, n in actual.items() if k in expected),
            "lost": sum(max(0, n - actual.get(k, 0)) for k, n in expected.items()),
            "wrong": sum(1 for k in actual if k not in expected)}


def _upsert_key(i: int, n: int) -> str:
    return f"k{(i * 7919) % max(1, n // 8)}"


def _upsert_message_for(n: int) -> Callable[[int], tuple[bytes, bytes | None]]:
    def message(i: int) -> tuple[bytes, bytes | None]:
        key = _upsert_key(i, n)
        return key.encode(), None if i % 23 == 0 else orjson.dumps({"k": key, "seq": i})
    return message


def _upsert_check(p: Pipeline, source: list[tuple[bytes | None, bytes | None]]) -> dict[str, int]:
    expected: dict[str, int | None] = {}
    for key, value in source:  # a key's records share a partition: partition order is their order
        expected[(key or b"").decode()] = None if value is None else orjson.loads(value)["seq"]
    actual = dict(p.rows("k, seq"))
    live = {k: v for k, v in expected.items() if v is not None}
    return {"rows": len(actual), "duplicates": 0, "lost": sum(1 for k in live if k not in actual),
            "wrong": sum(1 for k, v in actual.items() if live.get(k) != v)}


def _minute(i: int) -> str:
    return f"2026-11-22T10:{(i // 500) % 60:02d}:00+00:00"


def _aggregate_message(i: int) -> tuple[bytes, bytes | None]:
    user = f"u{i % 41}"
    return user.encode(), orjson.dumps({"user_id": user, "minute": _minute(i), "visits": 1})


def _aggregate_check(p: Pipeline, source: list[tuple[bytes | None, bytes | None]]) -> dict[str, int]:
    expected: collections.Counter[Any] = collections.Counter()
    for _, value in source:
        doc = orjson.loads(value or b"{}")
        expected[(doc["user_id"], doc["minute"])] += doc["visits"]
    actual = {(user, minute.isoformat()): visits for user, minute, visits in p.rows("user_id, minute, visits")}
    return _compare(expected, actual)


def workload(mode: str, n: int) -> Workload:
    if mode == "append":
        return Workload("CREATE TABLE {table} (event_id bigint NOT NULL, user_id text, at timestamptz)",
                        {}, _append_message, _append_check)
    if mode == "upsert":
        return Workload("CREATE TABLE {table} (k text PRIMARY KEY, seq bigint NOT NULL)",
                        {"SINK_MODE": "upsert"}, _upsert_message_for(n), _upsert_check)
    return Workload("CREATE TABLE {table} (user_id text, minute timestamptz, visits bigint NOT NULL, "
                    "PRIMARY KEY (user_id, minute))",
                    {"SINK_MODE": "upsert", "SINK_ADDITIVE_COLUMNS": "visits"}, _aggregate_message, _aggregate_check)


# -- scenarios -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    seed: int
    records: int
    partitions: int
    mode: str
    backend: str
    assignor: str
    faults: tuple[str, ...]
    rate: int = 0  # records produced per second; 0: spread production over ~4 s per fault
    early: bool = False  # faults from the first record on, not after 20% committed

    @classmethod
    def generate(cls, seed: int, records: int, faults: int = 8, kills: int = 3, kinds: tuple[str, ...] = FAULTS,
                 partitions: int = 12, rate: int = 0, required: tuple[str, ...] = ()) -> Scenario:
        """Mode, backend and assignor cycle with the seed (all 18 combinations within 18
        consecutive seeds); the faults are `kills` kills (or the `required` ones) and
        random others, shuffled; one run in four injects them from the first record on."""
        rng = random.Random(seed)
        fixed = list(required) or ["kill"] * kills
        chosen = fixed + [rng.choice(kinds) for _ in range(max(0, faults - len(fixed)))]
        rng.shuffle(chosen)
        return cls(seed, records, partitions, MODES[seed % 3], BACKENDS[seed // 3 % 3], ASSIGNORS[seed // 9 % 2],
                   tuple(chosen), rate, early=seed % 4 == 0)

    def describe(self) -> str:
        return (f"seed {self.seed}: {self.mode}, {self.backend} backend, {self.assignor}, {self.records} records "
                f"on {self.partitions} partitions; faults {', '.join(self.faults)}"
                + (" from the first record" if self.early else ""))


@dataclass
class RunResult:
    scenario: Scenario
    rows: int = 0
    duplicates: int = 0
    lost: int = 0
    wrong: int = 0
    faults: dict[str, int] = field(default_factory=dict)  # injected, by kind
    skipped: dict[str, int] = field(default_factory=dict)  # not injected: the services do not offer them
    observed: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # unexpected exits, unclean stops
    source_duplicates: int = 0  # records in the topic beyond those produced (the producer's retries)
    elapsed_s: float = 0.0

    @property
    def exact(self) -> bool:
        return not (self.duplicates or self.lost or self.wrong or self.problems)

    def line(self) -> str:
        s = self.scenario
        verdict = "exact" if self.exact else "NOT EXACT"
        return (f"seed {s.seed:>3} {s.mode:<9} {s.backend:<10} {s.assignor:<18} {s.records:>7} records  "
                f"faults {sum(self.faults.values()):>2}"
                + (f" (skipped {sum(self.skipped.values())})" if self.skipped else "")
                + f"  duplicates {self.duplicates}  lost {self.lost}  "
                f"wrong {self.wrong}  {self.elapsed_s:6.1f}s  {verdict}"
                + (f"  (the topic holds {self.source_duplicates:+d} records against those produced)"
                   if self.source_duplicates else "")
                + "".join(f"\n      ! {p}" for p in self.problems))


class FaultSkipped(Exception):
    """The services cannot inject this fault (the reason is the message)."""


def unavailable_faults(services: Services) -> set[str]:
    """The fault kinds these services cannot inject (skipped when a scenario names them)."""
    kafka = services.kafka
    return ({"bounce"} if kafka is None else set()) \
        | ({"kafka_errors"} if kafka is None or not kafka.supports_request_errors else set()) \
        | ({"pg_restart"} if services.restart_database is None else set())


# -- one run ---------------------------------------------------------------------------------------
class Fleet:
    """The replicas of one pipeline by slot; slot i runs on host `h<i>` (its own STATE_DIR)."""

    def __init__(self, pipeline: Pipeline, settings: dict[str, str], problems: list[str]) -> None:
        self.pipeline, self.settings, self.problems = pipeline, settings, problems
        self.slots: dict[int, ConnectorProcess] = {}
        self.stopped: set[int] = set()  # slots paused by SIGSTOP

    def start(self, slot: int) -> None:
        self.slots[slot] = self.pipeline.start(host=f"h{slot}", **self.settings)

    def supervise(self) -> None:
        """Restart a replica that exited on its own (like an orchestrator) and report it:
        a replica must survive every injected fault without exiting."""
        for slot, replica in list(self.slots.items()):
            if not replica.alive():
                tail = " | ".join(replica.output().splitlines()[-3:])
                self.problems.append(f"replica h{slot} exited on its own: {tail[-600:]}")
                self.start(slot)

    def stop(self, slot: int) -> None:
        """SIGTERM: a clean exit (0) is required."""
        replica = self.slots.pop(slot)
        code = replica.stop(timeout_s=90)
        if code != 0:
            tail = " | ".join(replica.output().splitlines()[-3:])
            self.problems.append(f"replica h{slot} exited {code} after SIGTERM: {tail[-600:]}")
        _remove(replica)

    def stop_all(self) -> None:
        for slot in sorted(self.slots):
            self.stop(slot)


def _remove(replica: ConnectorProcess) -> None:
    if isinstance(replica, ContainerReplica):
        replica.remove()


class Run:
    def __init__(self, services: Services, workdir: Path, scenario: Scenario, log: Callable[[str], None]) -> None:
        self.services, self.scenario, self.log = services, scenario, log
        self.rng = random.Random(scenario.seed * 7919 + 1)
        self.workload = workload(scenario.mode, scenario.records)
        rundir = workdir / f"run-{scenario.seed}"
        rundir.mkdir(parents=True, exist_ok=True)
        self.pipeline = new_pipeline(services, rundir, self.workload.ddl, scenario.partitions)
        self.result = RunResult(scenario)
        settings = {**REPLICA_SETTINGS, **self.workload.settings, "STATE_BACKEND": scenario.backend,
                    "KAFKA_PARTITION_ASSIGNMENT_STRATEGY": scenario.assignor}
        self.fleet = Fleet(self.pipeline, settings, self.result.problems)
        self.rate = scenario.rate or min(20_000, max(100, scenario.records // (4 * max(1, len(scenario.faults)))))
        self.production_s = scenario.records / self.rate

    def execute(self) -> RunResult:
        started = time.monotonic()
        s, p = self.scenario, self.pipeline
        producer = threading.Thread(target=self._produce, name="producer")
        try:
            self.fleet.start(0)
            producer.start()
            # One fault in each stratum of 20%..90% of the production time, none before 20% of
            # the records are committed, and each only once rows flow again after the
            # previous one (1 s later at least): faults hit a pipeline in steady flow, at
            # any point of its checkpoint cycle. An early scenario's strata span 0%..90% and
            # its first fault waits for nothing: it may hit before any offsets row exists.
            count, first = len(s.faults), 0.0 if s.early else 0.2
            points = [first + (0.9 - first) * (k + self.rng.random()) / count for k in range(count)]
            if not s.early:
                self._wait(lambda: self._progress() >= 0.2 * s.records, "20% committed")
            for k, (point, kind) in enumerate(zip(points, s.faults, strict=True)):
                due = max(started + point * self.production_s, time.monotonic() + (0.0 if s.early and k == 0 else 1.0))
                before = self._progress()
                self._wait(lambda due=due, before=before, k=k: time.monotonic() >= due  # type: ignore[misc]
                           and (self._progress() > before or before == s.records or (s.early and k == 0)),
                           f"flowing rows for the fault at {point:.0%} of production")
                self.log(f"  [{self._progress() / s.records:4.0%}] {kind}: {self._inject(kind)}")
            producer.join()
            self.log(f"  produced all at {time.monotonic() - started:.1f}s")
            self._wait(self._caught_up, "the committed offsets to reach the high watermarks", 300)
            self.log(f"  caught up at {time.monotonic() - started:.1f}s")
            self.fleet.stop_all()
            self.log(f"  stopped at {time.monotonic() - started:.1f}s")
            self.result.observed = self._observed()
            source = p.read_topic()
            # The table is checked against what the topic holds; records the producer
            # duplicated into the topic (a retried send) are reported apart, not hidden.
            self.result.source_duplicates = len(source) - s.records
            self.result.__dict__.update(self.workload.check(p, source))
        finally:
            producer.join()
            p.stop_all()
        self.result.elapsed_s = time.monotonic() - started
        return self.result

    # -- observation ---------------------------------------------------------------------------
    def _produce(self) -> None:
        s = self.scenario
        chunk = max(1, self.rate // 10)
        producer = make_producer(self.services.bootstrap_servers)
        for start in range(0, s.records, chunk):
            t0 = time.monotonic()
            self.pipeline.produce([self.workload.message(i) for i in range(start, min(start + chunk, s.records))],
                                  producer=producer)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))

    def _progress(self) -> int:
        """Records committed so far (sum of the database's next_offsets); during a
        database restart the last value is kept."""
        with contextlib.suppress(psycopg.Error):  # restarting, or not migrated yet
            self._last_progress = sum(o or 0 for o in self.pipeline.offsets().values())
        return getattr(self, "_last_progress", 0)

    def _caught_up(self) -> bool:
        try:  # a partition no record went to has no offsets row
            committed = {p: o for p, o in self.pipeline.offsets().items() if o}
            return committed == {p: hw for p, hw in self.pipeline.watermarks().items() if hw}
        except Exception:  # a database restart or broker bounce in progress: ask again
            return False

    def _wait(self, predicate: Callable[[], bool], what: str, timeout_s: float = 240) -> None:
        def check() -> bool:
            self.fleet.supervise()
            return predicate()
        wait_until(check, timeout_s, what, 0.1)

    def _observed(self) -> dict[str, int]:
        text = "\n".join(r.output() for r in self.pipeline.replicas)
        return {name: len(re.findall(pattern, text)) for name, pattern in OBSERVED.items()}

    # -- faults (each returns what it did, or raises FaultSkipped) -----------------------------------
    def _inject(self, kind: str) -> str:
        """Inject a fault of `kind`, counted as injected or as skipped."""
        try:
            did = getattr(self, "_" + kind)()
        except FaultSkipped as skipped:
            self.result.skipped[kind] = self.result.skipped.get(kind, 0) + 1
            return f"skipped ({skipped})"
        self.result.faults[kind] = self.result.faults.get(kind, 0) + 1
        return str(did)

    def _pick(self) -> int:
        return self.rng.choice(sorted(self.fleet.slots))

    def _kill(self) -> str:
        slot = self._pick()
        replica = self.fleet.slots[slot]
        replica.kill()
        _remove(replica)
        self.fleet.start(slot)
        return f"SIGKILL h{slot}, restarted"

    def _term(self) -> str:
        slot = self._pick()
        self.fleet.stop(slot)
        self.fleet.start(slot)
        return f"SIGTERM h{slot}, restarted"

    def _zombie(self) -> str:
        note = ""
        if len(self.fleet.slots) == 1:
            self.fleet.start(max(self.fleet.slots) + 1)
            note = " (second replica started first)"
            time.sleep(2)
        slot = self._pick()
        replica = self.fleet.slots[slot]
        pause = SESSION_TIMEOUT_S + self.rng.uniform(1, 3)
        replica.signal(signal.SIGSTOP)
        time.sleep(pause)
        replica.signal(signal.SIGCONT)
        return f"SIGSTOP h{slot} for {pause:.1f}s, SIGCONT{note}"

    def _scale(self) -> str:
        before = len(self.fleet.slots)
        if before < 3:
            for slot in range(3):
                if slot not in self.fleet.slots:
                    self.fleet.start(slot)
        else:
            for slot in sorted(self.fleet.slots)[1:]:
                self.fleet.stop(slot)
        return f"{before} -> {len(self.fleet.slots)} replicas"

    def _bounce(self) -> str:
        kafka = self.services.kafka
        if kafka is None:
            raise FaultSkipped("no fault injection on this Kafka")
        broker, down = self.rng.randint(1, self.services.brokers), self.rng.uniform(1, 3)
        kafka.broker_down(broker)
        time.sleep(down)
        kafka.broker_up(broker)
        return f"broker {broker} down for {down:.1f}s"

    def _apache(self) -> ApacheKafka:
        assert isinstance(self.services.kafka, ApacheKafka), "a real-broker fault needs Apache Kafka"
        return self.services.kafka

    def _leader_kill(self) -> str:
        kafka, partition = self._apache(), self.rng.randrange(self.scenario.partitions)
        node = kafka.leader(self.pipeline.topic, partition)
        return f"broker {node} (leader of partition {partition}) {self._kill_broker(kafka, node)}"

    def _coordinator_kill(self) -> str:
        kafka = self._apache()
        node = kafka.group_coordinator(self.pipeline.name)
        return f"broker {node} (group coordinator) {self._kill_broker(kafka, node)}"

    def _kill_broker(self, kafka: ApacheKafka, node: int) -> str:
        down = self.rng.uniform(1, 3)
        kafka.kill(node)
        time.sleep(down)
        kafka.restart(node)
        return f"SIGKILLed, restarted after {down:.1f}s"

    def _broker_freeze(self) -> str:
        kafka = self._apache()
        node = self.rng.choice(sorted(kafka.nodes))
        pause = BROKER_SESSION_S + self.rng.uniform(1, 3)
        kafka.pause(node)
        time.sleep(pause)
        kafka.resume(node)
        kafka.wait_for_brokers()
        return f"broker {node} SIGSTOPped for {pause:.1f}s (past its session), SIGCONT"

    def _kafka_errors(self) -> str:
        kafka = self.services.kafka
        if kafka is None or not kafka.supports_request_errors:
            raise FaultSkipped("no request-error injection on this Kafka")
        api = self.rng.choice(sorted(REQUEST_ERRORS))
        codes = [self.rng.choice(REQUEST_ERRORS[api]) for _ in range(self.rng.randint(2, 6))]
        kafka.inject_errors(api, codes)
        return f"next {api} requests fail with {codes}"

    def _pg_restart(self) -> str:
        if self.services.restart_database is None:
            raise FaultSkipped("the database is not ours to restart")
        self.services.restart_database()
        return "PostgreSQL restarted"

    def _pg_terminate(self) -> str:
        return f"pg_terminate_backend on {self.services.terminate_connector_sessions()} connector session(s)"

    def _lock(self) -> str:
        hold = CHECKPOINT_TIMEOUT_MS / 1000 * self.rng.uniform(1.5, 2.5)
        with psycopg.connect(self.services.database_url) as conn:
            conn.execute(f"LOCK TABLE {self.pipeline.table} IN SHARE MODE")
            time.sleep(hold)
        return f"SHARE lock on the table for {hold:.1f}s (CHECKPOINT_TIMEOUT_MS={CHECKPOINT_TIMEOUT_MS})"


def run_scenario(services: Services, workdir: Path, scenario: Scenario,
                 log: Callable[[str], None] = lambda line: None) -> RunResult:
    log(scenario.describe())
    return Run(services, workdir, scenario, log).execute()


# -- a set of runs ------------------------------------------------------------------------------------
def on_real_kafka(scenario: Scenario) -> Scenario:
    """The scenario for real Apache Kafka: request-error injection, which a real broker
    does not offer, becomes a SIGKILL of a partition leader's broker."""
    from dataclasses import replace

    return replace(scenario, faults=tuple("leader_kill" if f == "kafka_errors" else f for f in scenario.faults))


def scenario_for(services: Services, seed: int, records: int, faults: int = 8, kills: int = 3, partitions: int = 12,
                 rate: int = 0) -> Scenario:
    """Scenario.generate with the faults the services offer: on real Apache Kafka every
    run kills replicas, the partition leader's and the group coordinator's brokers,
    rebalances and restarts PostgreSQL (REQUIRED_ON_APACHE, and `kills` replica kills)."""
    if not isinstance(services.kafka, ApacheKafka):
        return Scenario.generate(seed, records, faults, kills, partitions=partitions, rate=rate)
    required = ("kill",) * kills + REQUIRED_ON_APACHE
    return Scenario.generate(seed, records, max(faults, len(required) + 1), kills, FAULTS_ON_APACHE,
                             partitions=partitions, rate=rate, required=required)


def summarize(results: list[RunResult], elapsed_s: float) -> dict[str, Any]:
    faults: collections.Counter[str] = collections.Counter()
    skipped: collections.Counter[str] = collections.Counter()
    observed: collections.Counter[str] = collections.Counter()
    for r in results:
        faults.update(r.faults)
        skipped.update(r.skipped)
        observed.update(r.observed)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "runs": len(results),
        "exact_runs": sum(r.exact for r in results), "records": sum(r.scenario.records for r in results),
        "seeds": [r.scenario.seed for r in results], "faults": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()), "skipped": dict(sorted(skipped.items())), "observed": dict(sorted(observed.items())),
        "duplicates": sum(r.duplicates for r in results), "lost": sum(r.lost for r in results),
        "wrong": sum(r.wrong for r in results), "problems": sum(len(r.problems) for r in results),
        "source_duplicates": sum(r.source_duplicates for r in results),
        "elapsed_s": round(elapsed_s, 1),
        "combinations": sorted({f"{r.scenario.mode}/{r.scenario.backend}/{r.scenario.assignor}" for r in results}),
    }


def format_summary(summary: dict[str, Any]) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in summary["faults"].items())
    observed = ", ".join(f"{k} {v}" for k, v in summary["observed"].items())
    return (f"runs {summary['runs']} ({summary['exact_runs']} exact), records {summary['records']}, "
            f"faults {summary['faults_total']} ({faults})"
            + (f", skipped {summary['skipped']}" if summary["skipped"] else "")
            + f"; observed in replica logs: {observed}; "
            f"duplicates {summary['duplicates']}, lost {summary['lost']}, wrong {summary['wrong']}, "
            f"records the producer duplicated into the topic {summary['source_duplicates']}, "
            f"unexpected exits/unclean stops {summary['problems']}; elapsed {summary['elapsed_s']:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1, help="first seed; run k uses seed + k")
    parser.add_argument("--faults", type=int, default=8, help="faults per run (at least --kills)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per run, after 20%% progress")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--rate", type=int, default=0,
                        help="records produced per second (default: production lasts ~4 s per fault)")
    parser.add_argument("--json", type=Path, help="also write the summary and every run as JSON")
    parser.add_argument("--verbose", action="store_true", help="print each fault as it is injected")
    args = parser.parse_args(argv)
    log = print if args.verbose else (lambda line: None)
    results: list[RunResult] = []
    started = time.monotonic()
    with services_from_env() as services, tempfile.TemporaryDirectory(prefix="eos-chaos-") as tmp:
        scenarios = [scenario_for(services, args.seed + k, args.records, args.faults, args.kills, args.partitions,
                                  args.rate) for k in range(args.runs)]
        for scenario in scenarios:
            result = run_scenario(services, Path(tmp), scenario, log)
            results.append(result)
            print(result.line(), flush=True)
    summary = summarize(results, time.monotonic() - started)
    print(format_summary(summary))
    if args.json:
        runs = [{**asdict(r), "exact": r.exact} for r in results]
        args.json.write_bytes(orjson.dumps({"summary": summary, "runs": runs}, option=orjson.OPT_INDENT_2))
    return 0 if summary["exact_runs"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
