"""Real `eos-connector run` processes killed at every named protocol step (I2), fenced as
zombies (I3), and finished by another replica (I4); each run ends exactly once."""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from pathlib import Path

import orjson
import psycopg
import pytest

from connector.embedded.harness import free_port, wait_until

pytestmark = pytest.mark.chaos
BACKENDS = ["memory", "filesystem", "postgres"]
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL, body text)"
N = 900
# Steps a checkpoint passes through, in order (connector.protocol.faults.STEPS less in_revoke).
STEPS = ["before_snapshot", "mid_snapshot_write", "after_snapshot_durable", "after_offsets_locked",
         "after_rows_written", "after_db_commit", "after_kafka_commit", "after_discard"]


def events(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(str(i).encode(), orjson.dumps({"event_id": i, "body": f"event {i}"})) for i in range(start, start + n)]




def buffered(port: int) -> float | None:
    """The replica's eos_buffered_records gauge, from its /metrics."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    found = re.search(r"^eos_buffered_records (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def is_stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("T")


# The memory backend writes nothing, so it has no mid_snapshot_write step. Every step x
# backend crashes in-process in test_crash_in_process.py; a real SIGKILL of a process
# takes one backend per step in the default run (in turn) and all of them in the slow set.
DEFAULT_RUN = {step: BACKENDS[i % len(BACKENDS)] for i, step in enumerate(STEPS)}
CRASH_CASES = [pytest.param(step, backend, marks=() if DEFAULT_RUN[step] == backend else pytest.mark.slow)
               for step in STEPS for backend in BACKENDS if (step, backend) != ("mid_snapshot_write", "memory")]


@pytest.mark.parametrize("step, backend", CRASH_CASES)
def test_crash_at_step(make_pipeline, step, backend):
    """I2: killed at `step` of the 2nd checkpoint, restarted: every record exactly once."""
    p = make_pipeline(DDL, partitions=3)
    p.produce(events(N), partition_of=lambda i: i % 3)
    settings = {"STATE_BACKEND": backend, "CHECKPOINT_MAX_RECORDS": "200"}
    crashed = p.start(CONNECTOR_FAULT=f"{step}:2", **settings)
    assert crashed.wait(60) == -signal.SIGKILL, crashed.output()[-2000:]
    assert f"fault hook: kill at {step} #2" in crashed.output()
    committed_before_restart = p.count()
    assert committed_before_restart <= N

    restarted = p.start(**settings)
    p.wait_for_rows(N, 60, restarted)
    wait_until(lambda: p.offsets() == p.watermarks(), 30, "offsets to reach the watermarks")
    assert restarted.stop() == 0
    p.assert_exact(N)
    assert recovery_outcomes(restarted.output()) == EXPECTED_RECOVERY.get((step, backend != "memory"), [])


# What the restarted replica's initialize_state must do with the snapshot left pending
# (durable backends only): commit it if the crash came before COMMIT, find it already
# committed (step 1, the checkpoint-ID handle) if after.
EXPECTED_RECOVERY = {
    ("after_snapshot_durable", True): ["committed"],
    ("after_offsets_locked", True): ["committed"],
    ("after_rows_written", True): ["committed"],
    ("after_db_commit", True): ["already-committed"],
    ("after_kafka_commit", True): ["already-committed"],
}


def recovery_outcomes(output: str) -> list[str]:
    """Outcomes of the checkpoints the replica re-committed from its state backend."""
    recommitted = re.findall(r"re-committing pending checkpoint (\d+)", output)
    return [re.search(rf"checkpoint {cid} (\S+):", output).group(1) for cid in recommitted]


@pytest.mark.parametrize("backend", BACKENDS)
def test_crash_inside_revoke_callback(make_pipeline, backend):
    """I2/I7: the first replica dies inside its revoke callback with records buffered;
    the second takes every partition and nothing is lost or doubled."""
    p = make_pipeline(DDL, partitions=4)
    p.produce(events(N), partition_of=lambda i: i % 4)
    slow = {"STATE_BACKEND": backend, "CHECKPOINT_INTERVAL_MS": "600000", "CHECKPOINT_MAX_RECORDS": "1000000"}
    first = p.start(CONNECTOR_FAULT="in_revoke:1", **slow)
    wait_until(lambda: "assigned" in first.output(), 30, "first assignment")
    time.sleep(2)  # the first replica buffers everything; nothing commits it yet
    second = p.start(host="b", STATE_BACKEND=backend)
    assert first.wait(60) == -signal.SIGKILL
    assert "fault hook: kill at in_revoke #1" in first.output()
    p.wait_for_rows(N, 60, second)
    assert second.stop() == 0
    p.assert_exact(N)


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
def test_zombie_is_fenced(make_pipeline, backend):
    """I3: a replica frozen with a durable snapshot past its session timeout wakes after
    another replica took its partitions and committed past it: its commit is fenced.
    The memory backend saves before step 3; the filesystem backend beside it, so its
    zombie may be frozen inside its transaction, which the server ends after
    CHECKPOINT_TIMEOUT_MS."""
    p = make_pipeline(DDL, partitions=4)
    p.produce(events(N), partition_of=lambda i: i % 4)
    settings = {"STATE_BACKEND": backend, "CHECKPOINT_MAX_RECORDS": "300", "CHECKPOINT_TIMEOUT_MS": "3000"}
    zombie = p.start(CONNECTOR_FAULT="after_snapshot_durable:2:stop", **settings)
    wait_until(lambda: is_stopped(zombie.pid), 60, "the replica to freeze itself")
    rows_at_freeze = p.count()
    assert 0 < rows_at_freeze < N  # checkpoint 1 landed; checkpoint 2 is held by the zombie

    successor = p.start(host="b", **settings)  # another host: it cannot see the zombie's files
    p.wait_for_rows(N, 60, successor)  # took the partitions once the session timed out
    zombie.signal(signal.SIGCONT)
    # IDs come from a database-wide sequence: the zombie's 2nd checkpoint has some ID.
    wait_until(lambda: re.search(r"checkpoint \d+ fenced: \d+ records", zombie.output()), 30,
               "the zombie's held checkpoint to be fenced")

    p.produce(events(300, start=N), partition_of=lambda i: i % 4)
    p.wait_for_rows(N + 300, 60, successor)
    assert zombie.stop() == 0 and successor.stop() == 0
    p.assert_exact(N + 300)


def test_zombie_frozen_inside_the_commit_transaction(make_pipeline):
    """A replica frozen while it holds the offsets rows locked (inside its commit) does not
    stall the pipeline: the server ends its session after CHECKPOINT_TIMEOUT_MS, the
    successor's commit proceeds, and the zombie, woken, retries and is fenced."""
    p = make_pipeline(DDL, partitions=4)
    p.produce(events(N), partition_of=lambda i: i % 4)
    settings = {"CHECKPOINT_MAX_RECORDS": "300", "CHECKPOINT_TIMEOUT_MS": "3000"}
    zombie = p.start(CONNECTOR_FAULT="after_offsets_locked:2:stop", **settings)
    wait_until(lambda: is_stopped(zombie.pid), 60, "the replica to freeze itself")
    successor = p.start(host="b", **settings)
    p.wait_for_rows(N, 60, successor)
    p.assert_exact(N)  # the successor's commits went past the zombie's locks: the server ended its session
    assert is_stopped(zombie.pid), "the zombie runs before this test woke it:\n" + zombie.output()[-4000:]
    zombie.signal(signal.SIGCONT)
    try:
        wait_until(lambda: re.search(r"checkpoint \d+ fenced", zombie.output()), 60, "the zombie to be fenced")
    except TimeoutError as exc:  # what each replica and the database say, as they are now
        raise AssertionError(f"{exc}\nzombie:\n{zombie.output()[-4000:]}\nsuccessor:\n{successor.output()[-4000:]}\n"
                             f"rows: {p.count()}, offsets: {p.offsets()}, checkpoints: {p.checkpoints()}") from exc
    p.produce(events(300, start=N), partition_of=lambda i: i % 4)
    p.wait_for_rows(N + 300, 60, successor)
    assert zombie.stop() == 0 and successor.stop() == 0
    p.assert_exact(N + 300)


@pytest.mark.parametrize("frozen", ["mid_copy", "after_a_pipeline"])
def test_zombie_frozen_where_the_server_does_not_end_it(make_pipeline, frozen):
    """A replica frozen inside its commit, holding the offsets rows locked, where the server
    never ends its session: mid-COPY (the statement waits on its client: statement_timeout
    is not served there, and the session is not idle) or idle in transaction after a
    pipeline (psycopg's executemany; idle_in_transaction_session_timeout is not armed). The
    next replica's commit times out once, ends that session and commits every record. The
    zombie is played on a connection of the connector's own name and timeouts."""
    p = make_pipeline(DDL, partitions=4)
    p.produce(events(N), partition_of=lambda i: i % 4)
    settings = {"CHECKPOINT_MAX_RECORDS": "300", "CHECKPOINT_TIMEOUT_MS": "3000"}
    first = p.start(**settings)
    p.wait_for_rows(N, 60, first)
    assert first.stop() == 0
    zombie = psycopg.connect(p.services.database_url, application_name="eos-connector")
    zombie.execute("SELECT set_config('statement_timeout', '3000', true), "
                   "set_config('idle_in_transaction_session_timeout', '3000', true)")
    lock = "UPDATE eos_connector.offsets SET next_offset = next_offset WHERE pipeline = %s"
    if frozen == "mid_copy":
        zombie.execute(lock, (p.name,))
        zombie.pgconn.send_query(f"COPY {p.table} FROM STDIN".encode())
        assert zombie.pgconn.get_result().status == psycopg.pq.ExecStatus.COPY_IN
        zombie.pgconn.put_copy_data(b"4")  # half a row: the server waits for the rest
        zombie.pgconn.flush()
    else:
        with zombie.pipeline():
            zombie.cursor().executemany(lock, [(p.name,)])
    time.sleep(4)  # past the zombie's own timeouts: the server has not ended it
    alive = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {zombie.info.backend_pid}"
    assert p.services.sql(alive) == [(1,)]
    p.produce(events(300, start=N), partition_of=lambda i: i % 4)
    successor = p.start(host="b", **settings)
    p.wait_for_rows(N + 300, 60, successor)
    assert re.search(r"ended the connector's session\(s\) \d+: a transaction waiting on its client",
                     successor.output())
    assert successor.stop() == 0 and p.services.sql(alive) == [(0,)]
    p.assert_exact(N + 300)
    zombie.pgconn.finish()


def test_other_replica_finishes_pending_snapshot(make_pipeline):
    """I4: with the postgres backend, a replica dies with a durable snapshot; a different
    replica (new host/pid) commits it during its own initialize_state."""
    p = make_pipeline(DDL, partitions=3)
    p.produce(events(N), partition_of=lambda i: i % 3)
    settings = {"STATE_BACKEND": "postgres", "CHECKPOINT_MAX_RECORDS": "200"}
    crashed = p.start(CONNECTOR_FAULT="after_snapshot_durable:2", **settings)
    assert crashed.wait(60) == -signal.SIGKILL
    pending = p.services.sql("SELECT checkpoint_id, replica FROM eos_connector.snapshots WHERE pipeline = %s",
                             (p.name,))
    assert len(pending) == 1
    other = p.start(host="b", **settings)
    p.wait_for_rows(N, 60, other)
    assert other.stop() == 0
    p.assert_exact(N)
    finished = [c for c in p.checkpoints() if c[0] == pending[0][0]]
    other_id = re.search(r"replica (\S+) of pipeline", other.output()).group(1)
    assert finished and finished[0][1] == other_id != pending[0][1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("step", ["after_rows_written", "after_db_commit", "after_kafka_commit"])
def test_additive_aggregate_counts_each_record_once(make_pipeline, step, backend):
    """I1: per-user-per-minute visit counts (count = count + excluded.count) equal the
    counts computed from the produced events, across a crash around COMMIT — where an
    at-least-once sink adds the re-delivered batch a second time."""
    p = make_pipeline("CREATE TABLE {table} (user_id text, minute timestamptz, visits bigint NOT NULL, "
                      "PRIMARY KEY (user_id, minute))", partitions=3)
    visits = [(f"user-{i % 7}", f"2026-11-22T10:{(i // 50) % 60:02d}:00Z") for i in range(N)]
    expected: dict[tuple[str, str], int] = {}
    for user, minute in visits:
        expected[(user, minute)] = expected.get((user, minute), 0) + 1
    p.produce([(u.encode(), orjson.dumps({"user_id": u, "minute": m, "visits": 1})) for u, m in visits],
              partition_of=lambda i: (i % 7) % 3)
    settings = {"STATE_BACKEND": backend, "SINK_MODE": "upsert", "SINK_ADDITIVE_COLUMNS": "visits",
                "CHECKPOINT_MAX_RECORDS": "200"}
    crashed = p.start(CONNECTOR_FAULT=f"{step}:2", **settings)
    assert crashed.wait(60) == -signal.SIGKILL
    restarted = p.start(**settings)
    wait_until(lambda: p.offsets() == p.watermarks(), 60, "offsets to reach the watermarks")
    assert restarted.stop() == 0
    rows = p.rows("user_id, to_char(minute AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:00Z'), visits")
    assert {(u, m): n for u, m, n in rows} == expected
    assert sum(n for *_, n in rows) == N


def test_a_fenced_partition_without_an_offsets_row_is_read_again_end_to_end(make_pipeline, services):
    """I11 through `eos-connector run`: the replica has buffered three partitions of a new
    pipeline (no offsets rows) when another commit lands the first ten records of
    partitions 0 and 1 (as a restarted replica re-committing its snapshot does). Its
    checkpoint is fenced; partition 2, still without a row, is read again from its fenced
    range's start — reading on would have lost its first ten records for good."""
    p = make_pipeline(DDL, partitions=3)
    p.produce(events(30), partition_of=lambda i: i % 3)
    held = {"CHECKPOINT_INTERVAL_MS": "600000", "STATE_BACKEND": "filesystem"}  # commits only when asked
    port = free_port()
    replica = p.start(**held, HTTP_PORT=str(port))
    wait_until(lambda: replica.check_alive() or buffered(port) == 30, 60, "10 records of each partition buffered")
    other = [(i, f"event {i}") for i in range(30) if i % 3 != 2]
    with services.sql_transaction() as sql:  # the other commit: rows and offsets together
        sql(f"INSERT INTO {p.table} (event_id, body) VALUES " + ", ".join(["(%s, %s)"] * len(other)),
            [v for row in other for v in row])
        sql("INSERT INTO eos_connector.offsets (pipeline, topic, partition, next_offset, replica) "
            "VALUES (%s, %s, 0, 10, 'other'), (%s, %s, 1, 10, 'other')", [p.name, p.topic, p.name, p.topic])
    code = p.cli(["savepoint", "create", f"fence-{p.name}"], **held)  # asks the replica to checkpoint now
    assert code.returncode == 0, code.stdout + code.stderr
    assert "fenced" in replica.output()
    p.produce(events(30, start=30), partition_of=lambda i: i % 3)
    # the new records buffered (and partition 2's fenced ones again: 40) before the final checkpoint
    wait_until(lambda: replica.check_alive() or (buffered(port) or 0) >= 30, 60, "the new records buffered")
    assert replica.stop() == 0  # the final checkpoint
    finisher = p.start(STATE_BACKEND="filesystem")
    wait_until(lambda: finisher.check_alive() or p.offsets() == p.watermarks(), 60, "offsets to reach the watermarks")
    assert finisher.stop() == 0
    p.assert_exact(60)  # reading on past the fence lost partition 2's first ten records here
