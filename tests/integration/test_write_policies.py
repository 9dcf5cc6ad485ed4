"""Write policies beyond append and upsert. SINK_MODE=insert-ignore: the first record of
a key writes its row; a later one (a key stored already, or met earlier in the same
checkpoint) is skipped and counted, never dead-lettered. SINK_VERSION_COLUMN: a stored
row is replaced only by a greater version. A SIGKILL between the rows and COMMIT changes
none of that."""

from __future__ import annotations

import signal
import uuid

import orjson
import pytest

from connector.models import Record
from connector.routing import TableConfig
from connector.sink.connection import engine_for
from connector.sink.mapping import RowMapper
from connector.sink.table import load_target
from connector.sink.writer import BatchWriter

DDL = "CREATE TABLE {table} (id bigint PRIMARY KEY, body text, n integer CHECK (n >= 0))"


def body(i: int) -> str:
    return f"«{i}»\t\"first\" \\ é" if i < 100 else f"later {i}"


@pytest.mark.integration
def test_a_stored_key_and_a_repeated_one_are_skipped_and_counted(services):
    name = f"ignore_{uuid.uuid4().hex[:8]}"
    services.sql(DDL.format(table=name))
    services.sql(f"INSERT INTO {name} VALUES (1, 'stored', 0)")
    # One batch (the same fields throughout): the refused record is found by halves, each
    # probe rolled back, and only the rows that stay count as written or skipped.
    docs = [{"id": 1, "body": "again", "n": 1}, {"id": 2, "body": "first 2", "n": 2}, {"id": 3, "body": "bad", "n": -1},
            {"id": 2, "body": "second 2", "n": 3}, {"id": 4, "body": "four", "n": 4}]
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        target = load_target(conn, TableConfig((None, name), "insert-ignore"))
        mapper = RowMapper(target.spec.columns, target.mode, target.key_columns)
        writer = BatchWriter(conn, target)
        counts = writer.write([mapper(Record("t", 0, i, None, orjson.dumps(d))) for i, d in enumerate(docs)])
    engine.dispose()
    assert target.key_columns == ("id",)
    assert services.sql(f"SELECT id, body FROM {name} ORDER BY id") == [(1, "stored"), (2, "first 2"), (4, "four")]
    assert (counts, writer.skipped, set(writer.rejected)) == ({"rows": 2, "deleted": 0, "skipped": 2}, 2, {2})


@pytest.mark.chaos
def test_first_record_of_each_key_wins_across_checkpoints_and_a_kill(make_pipeline):
    """300 records, three of each of 100 keys, checkpoints of 70: killed before the 2nd
    checkpoint's COMMIT, restarted; each key's row is its first record's, and the 200
    later records are counted as skipped once each."""
    p = make_pipeline(DDL, partitions=1)
    p.produce([(None, orjson.dumps({"id": i % 100, "body": body(i)})) for i in range(300)])
    settings = {"SINK_MODE": "insert-ignore", "CHECKPOINT_MAX_RECORDS": "70"}
    crashed = p.start(CONNECTOR_FAULT="after_rows_written:2", **settings)
    assert crashed.wait(60) == -signal.SIGKILL
    assert p.count() == 70
    restarted = p.start(**settings)
    p.wait_caught_up(restarted)
    assert restarted.stop() == 0
    assert p.rows("id, body", "ORDER BY id") == [(i, body(i)) for i in range(100)]
    counts = [c[2] for c in p.checkpoints()]
    assert (sum(c["skipped"] for c in counts), sum(c["rows"] for c in counts)) == (200, 100)
    assert sum(c["records"] for c in counts) == 300


@pytest.mark.chaos
def test_newer_version_wins_across_checkpoints_and_a_kill(make_pipeline):
    """SINK_VERSION_COLUMN=v: each key's row is its greatest version's, whatever order the
    versions came in and however checkpoints cut them; older ones are counted as skipped."""
    p = make_pipeline("CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint, body text)", partitions=1)
    p.services.sql(f"INSERT INTO {p.table} VALUES (0, NULL, 'stored without a version'), (1, 100, 'stored v100')")
    versions = [3, 1, 5, 4, 2]  # each key's, one after another: most keys' all in one checkpoint
    docs = [{"id": k, "v": v, "body": f"«{k}» v{v}"} for k in range(40) for v in versions]
    docs.append({"id": 2, "body": "no version"})  # changes nothing stored
    p.produce([(None, orjson.dumps(d)) for d in docs])
    settings = {"SINK_MODE": "upsert", "SINK_VERSION_COLUMN": "v", "CHECKPOINT_MAX_RECORDS": "30"}
    crashed = p.start(CONNECTOR_FAULT="after_rows_written:3", **settings)
    assert crashed.wait(60) == -signal.SIGKILL
    restarted = p.start(**settings)
    p.wait_caught_up(restarted)
    assert restarted.stop() == 0
    expected = [(k, 5, f"«{k}» v5") for k in range(40)]
    expected[1] = (1, 100, "stored v100")
    assert p.rows("id, v, body", "ORDER BY id") == expected
    counts = [c[2] for c in p.checkpoints()]
    # Applied: every key's 3 and 5 (after its 3, 1 and 4 and 2 are older), key 0's row had no version.
    assert sum(c["records"] for c in counts) == len(docs)
    assert sum(c["skipped"] for c in counts) == 39 * 3 + 5 + 1


@pytest.mark.integration
def test_versions_of_keys_only_the_database_finds_equal(services):
    """Numeric keys `1.0` and `1` are one key to PostgreSQL: the checkpoint is tried as it
    is, refused (21000), grouped by the database and written again; what the refused try
    skipped is not counted twice."""
    name = f"versions_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (k numeric PRIMARY KEY, v bigint, body text)")
    docs = [{"k": "1.0", "v": 2, "body": "a"}, {"k": 1, "v": 1, "body": "b"}, {"k": "2", "v": 7, "body": "c"}]
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        target = load_target(conn, TableConfig((None, name), "upsert", ("k",), version_column="v"))
        mapper = RowMapper(target.spec.columns, target.mode, target.key_columns)
        writer = BatchWriter(conn, target)
        counts = writer.write([mapper(Record("t", 0, i, None, orjson.dumps(d))) for i, d in enumerate(docs)])
    engine.dispose()
    assert target.keys_by_database
    assert services.sql(f"SELECT k::text, v, body FROM {name} ORDER BY k") == [("1.0", 2, "a"), ("2", 7, "c")]
    assert (counts["skipped"], writer.rejected) == (1, {})
