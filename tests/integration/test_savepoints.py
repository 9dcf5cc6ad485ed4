"""Savepoints and offset resets against real services: a savepoint of a running pipeline
includes what it had read, stop-with-savepoint stops it, a renamed pipeline started from
the savepoint continues exactly where the old one stopped, and resets are refused while
replicas are live."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from connector.embedded.harness import wait_until

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL)"


def events(start: int, stop: int) -> list[tuple[None, bytes]]:
    return [(None, orjson.dumps({"event_id": i})) for i in range(start, stop)]


def cli(p, *args: str, **overrides: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "connector", *args], env={**os.environ, **p.env(**overrides)},
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_savepoint_stop_and_renamed_pipeline(make_pipeline):
    p = make_pipeline(DDL, partitions=3)
    slow = {"CHECKPOINT_INTERVAL_MS": "600000"}  # only a request makes this replica commit
    p.produce(events(0, 300), partition_of=lambda i: i % 3)
    replica = p.start(**slow)
    wait_until(lambda: replica.check_alive() or "assigned" in replica.output(), 60, "the assignment")

    code, out = cli(p, "savepoint", "create", "before-upgrade")
    assert code == 0, out
    assert p.count() == 300  # the replica checkpointed on request, then the cut was taken
    assert "before-upgrade" in out and "3 partition(s)" in out

    p.produce(events(300, 450), partition_of=lambda i: i % 3)
    code, out = cli(p, "savepoint", "create", "final", "--stop")
    assert code == 0, out
    assert replica.wait(30) == 0  # stopped after its final checkpoint
    assert p.count() == 450 and sum(p.offsets().values()) == 450
    assert cli(p, "savepoint", "create", "final")[0] == 1  # names are unique

    # A renamed pipeline (new name, new group) continues from the savepoint: no record twice.
    renamed = {"CONNECTOR_NAME": p.name + "-v2", "START_FROM_SAVEPOINT": "final"}
    p.produce(events(450, 600), partition_of=lambda i: i % 3)
    successor = p.start(**renamed)
    p.wait_for_rows(600, 60, successor)
    assert successor.stop() == 0
    again = p.start(**renamed)  # a restart with the variable still set resumes; it does not rewind
    p.produce(events(600, 630), partition_of=lambda i: i % 3)
    p.wait_for_rows(630, 60, again)
    assert again.stop() == 0
    p.assert_exact(630)
    code, out = cli(p, "savepoint", "list", "--json")
    assert code == 0 and {s["name"] for s in orjson.loads(out)} >= {"before-upgrade", "final"}


def test_offsets_reset(make_pipeline):
    p = make_pipeline(DDL, partitions=2)
    p.produce(events(0, 100), partition_of=lambda i: i % 2)
    replica = p.start()
    p.wait_for_rows(100, 60, replica)

    code, out = cli(p, "offsets", "reset", "--to", "earliest")
    assert code == 1 and "live replica(s)" in out and "nothing was changed" in out
    code, out = cli(p, "offsets", "reset", "--to", "earliest", "--dry-run")
    assert code == 0 and "would reset" in out and f"{p.topic}[0] 50 -> 0" in out
    assert p.offsets() == {0: 50, 1: 50}
    assert replica.stop() == 0

    code, out = cli(p, "offsets", "reset", "--to", "latest")  # skip nothing new: already at the end
    assert code == 0 and p.offsets() == {0: 50, 1: 50}
    p.produce(events(100, 140), partition_of=lambda i: i % 2)
    code, out = cli(p, "offsets", "reset", "--to", "latest")  # skip the 40 new records
    assert code == 0 and p.offsets() == {0: 70, 1: 70}
    from connector.backends.filesystem import FilesystemBackend
    from connector.models import PartitionRange, Record, Snapshot

    backend = FilesystemBackend(p.env()["STATE_DIR"], p.name)  # a snapshot left pending on this host
    backend.save(Snapshot(7, (PartitionRange(p.topic, 0, 70, 71, 1),), (Record(p.topic, 0, 70, None, b"{}"),), ()))
    code, out = cli(p, "offsets", "reset", "--to", "earliest")  # all of it again
    assert code == 0 and p.offsets() == {0: 0, 1: 0}
    assert "dropped 1 pending filesystem snapshot(s)" in out and list(backend.pending()) == []
    code, out = cli(p, "offsets", "reset", "--to", "savepoint:nope")
    assert code == 1 and "no savepoint named 'nope'" in out
    code, out = cli(p, "offsets", "reset", "--to", "yesterday")
    assert code == 1 and "expected earliest, latest" in out


def test_offsets_reset_to_a_timestamp(make_apache_pipeline):
    """Needs a broker that answers ListOffsets by timestamp (the librdkafka mock cluster
    answers every such lookup with -1): always real Apache Kafka."""
    p = make_apache_pipeline(DDL, partitions=1)
    p.produce(events(0, 10))
    code, out = cli(p, "offsets", "reset", "--to", "timestamp:2000-01-01T00:00:00Z")
    assert code == 0 and p.offsets() == {0: 0}
    code, out = cli(p, "offsets", "reset", "--to", "timestamp:2999-01-01T00:00:00Z")
    assert code == 0 and p.offsets() == {0: 10}


@pytest.fixture
def bookkeeping(services):
    """A PostgresStore of a fresh pipeline over the migrated bookkeeping schema `eos`."""
    import uuid

    from connector.ops.migrate import upgrade
    from connector.routing import TableConfig
    from connector.sink.connection import engine_for
    from connector.sink.postgres import PostgresStore

    engine = engine_for(services.database_url)
    upgrade(engine, "eos")
    engine.dispose()
    store = PostgresStore(services.database_url, f"requests-{uuid.uuid4().hex[:8]}", "r1", "eos",
                          routes=TableConfig((None, "x")))
    yield store
    store.close()


def test_a_replica_starting_while_a_request_is_in_flight_serves_it(services, bookkeeping):
    """`savepoint create --stop` issued while a replica starts stops it too: its first
    heartbeat takes the requests in flight; one its command abandoned long ago it does not."""
    pipeline = bookkeeping.pipeline
    services.sql("INSERT INTO eos.requests (pipeline, kind, created_at) VALUES (%s, 'stop', now() - interval '1 hour')",
                 [pipeline])
    services.sql("INSERT INTO eos.requests (pipeline, kind) VALUES (%s, 'stop')", [pipeline])
    (fresh,) = services.sql("SELECT max(id) FROM eos.requests WHERE pipeline = %s", [pipeline])[0]
    acked, pending = bookkeeping.heartbeat(None)
    assert pending == [(fresh, "stop")] and acked < fresh


def test_the_checkpoints_table_is_pruned_but_for_the_newest_row(services, bookkeeping):
    """Rows older than a day go (a snapshot re-committed after its row went is fenced
    instead); a recent row and the pipeline's newest, however old, stay."""
    pipeline = bookkeeping.pipeline
    services.sql("INSERT INTO eos.checkpoints (pipeline, checkpoint_id, replica, offsets, counts, committed_at) "
                 "SELECT %s, g, 'r', '[]', '{}', now() - interval '2 days' * (g %% 2) FROM generate_series(1, 6) g",
                 [pipeline])  # 1, 3, 5 two days old; 2, 4 recent; 6 the newest, recent
    services.sql("UPDATE eos.checkpoints SET committed_at = now() - interval '3 days' "
                 "WHERE pipeline = %s AND checkpoint_id = 6", [pipeline])
    bookkeeping.heartbeat(None)
    assert services.sql("SELECT checkpoint_id FROM eos.checkpoints WHERE pipeline = %s ORDER BY 1",
                        [pipeline]) == [(2,), (4,), (6,)]


def test_a_finished_savepoint_leaves_no_request_behind(services, bookkeeping):
    """A replica started after `savepoint create --stop` returned must not stop on it."""
    from connector import bookkeeping as bk
    from connector.ops.savepoints import create_savepoint
    from connector.sink.connection import engine_for

    engine = engine_for(services.database_url).execution_options(schema_translate_map=bk.translate("eos"))
    create_savepoint(engine, bookkeeping.pipeline, f"sp-{bookkeeping.pipeline}", stop=True)
    engine.dispose()
    assert services.sql("SELECT count(*) FROM eos.requests WHERE pipeline = %s", [bookkeeping.pipeline]) == [(0,)]
    assert bookkeeping.heartbeat(None)[1] == []
