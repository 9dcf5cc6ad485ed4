"""A record the connector cannot write is that record's fault, wherever the error is
raised: the database refusing it, Python refusing to send it, a column it cannot fill.
Refused records are isolated without exhausting the server's lock table. Real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC

import orjson
import pytest

from connector.models import Record
from connector.routing import TableConfig
from connector.sink.connection import engine_for
from connector.sink.mapping import Op, RowMapper
from connector.sink.table import load_target, reflect_table
from connector.sink.writer import BatchWriter

pytestmark = pytest.mark.integration


@pytest.fixture
def table(services):
    name = f"faults_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (id bigint PRIMARY KEY, v text, n integer CHECK (n >= 0), "
                 f"doubled integer GENERATED ALWAYS AS (n * 2) STORED)")
    return name


def write(services, table, mode, ops):
    """One transaction's write of `ops`; the writer and the locks the session held at its end."""
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        keys = ("id",) if mode != "append" else ()
        writer = BatchWriter(conn, load_target(conn, TableConfig((None, table), mode, keys)))
        writer.write(ops)
        locks = conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()").scalar()
    engine.dispose()
    return writer, locks


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_a_row_python_cannot_send_is_that_records_fault(services, table, mode):
    """A lone surrogate in a row (UnicodeEncodeError inside COPY) rejects its record only."""
    kind = "insert" if mode == "append" else "upsert"
    ops = [Op(kind, ("id", "v"), f"{i}\t{text}\n", (str(i),)) for i, text in enumerate(["a", "b\ud800", "c"])]
    writer, _ = write(services, table, mode, ops)
    assert list(writer.rejected) == [1] and writer.rejected[1].error_class == "UnicodeEncodeError"
    assert services.sql(f"SELECT id, v FROM {table} ORDER BY id") == [(0, "a"), (2, "c")]


def test_bisecting_a_refused_upsert_batch_holds_a_handful_of_locks(services, table):
    """Every fourth upsert into a stored key violates a CHECK: the batch is bisected down to
    those rows, and the session holds a few locks, not one stage table's per attempt (which
    exhausted the lock table at 12 000 rows: `out of shared memory`)."""
    services.sql(f"INSERT INTO {table} (id, n) SELECT g, 1 FROM generate_series(0, 399) g")
    ops = [Op("upsert", ("id", "n"), f"{i}\t{-1 if i % 4 == 0 else i}\n", (str(i),)) for i in range(400)]
    writer, locks = write(services, table, "upsert", ops)
    assert sorted(writer.rejected) == list(range(0, 400, 4))
    assert locks < 60
    assert services.sql(f"SELECT count(*), sum(n) FROM {table} WHERE n > 1") == [(299, sum(range(400)) - sum(range(0, 400, 4)) - 1)]


def test_a_generated_column_is_never_filled_from_a_record(services, table):
    """A record naming a generated column writes its other fields; the database computes it."""
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        spec = reflect_table(conn, None, table)
        assert "doubled" not in [c.name for c in spec.columns]
        op = RowMapper(spec.columns, "append")(Record("t", 0, 0, None, orjson.dumps({"id": 1, "n": 4, "doubled": 99})))
        writer = BatchWriter(conn, load_target(conn, TableConfig((None, table))))
        writer.write([op])
    engine.dispose()
    assert writer.rejected == {}
    assert services.sql(f"SELECT id, n, doubled FROM {table}") == [(1, 4, 8)]


def test_every_timestamp_the_mapping_accepts_the_database_stores_as_parsed(services):
    """Forms Python reads that PostgreSQL would refuse (a comma before the fraction, the basic
    form, week dates) are rendered anew, so a mapped record is never refused for them; a
    trailing NUL is refused at mapping."""
    from datetime import datetime

    from connector.errors import MappingError

    name = f"stamps_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (id bigint, at timestamptz)")
    texts = ["2024-05-01T10:00:00,5", "20240501T100000", "2024-W18-3T10:00", "2024-05-01T10:00:00+0530",
             "2024-05-01 10:00:00.1234567Z", "2024-05-01T10:00:00.5+05:30:15"]
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        spec = reflect_table(conn, None, name)
        mapper = RowMapper(spec.columns, "append")
        ops = [mapper(Record("t", 0, i, None, orjson.dumps({"id": i, "at": t}))) for i, t in enumerate(texts)]
        with pytest.raises(MappingError, match="control character"):
            mapper(Record("t", 0, 9, None, orjson.dumps({"id": 9, "at": "2024-05-01T10:00:00\x00"})))
        writer = BatchWriter(conn, load_target(conn, TableConfig((None, name))))
        writer.write(ops)
    engine.dispose()
    assert writer.rejected == {}
    stored = dict(services.sql(f"SELECT id, at FROM {name}"))
    for i, text in enumerate(texts):
        expected = datetime.fromisoformat(text)
        expected = expected if expected.tzinfo else expected.replace(tzinfo=UTC)
        assert abs((stored[i] - expected).total_seconds()) <= 1e-6, text  # PostgreSQL rounds a 7th digit


def test_a_refused_tombstone_leaves_the_upserts_before_it_applied(services):
    """Stored (1, 1) is referenced by a child row: an upsert {"k": 1, "v": 2} then a tombstone
    for key 1 in one checkpoint leave (1, 2), as one at a time; the tombstone alone is refused."""
    name = f"parent_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (k bigint PRIMARY KEY, v bigint)")
    services.sql(f"CREATE TABLE {name}_child (k bigint REFERENCES {name} (k))")
    services.sql(f"INSERT INTO {name} VALUES (1, 1), (2, 1)")
    services.sql(f"INSERT INTO {name}_child VALUES (1)")
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        spec = reflect_table(conn, None, name)
        mapper = RowMapper(spec.columns, "upsert", ["k"])
        values = [b'{"k": 1, "v": 2}', None, b'{"k": 2, "v": 5}', None]
        keys = [b"1", b"1", b"2", b"2"]
        ops = [mapper(Record("t", 0, i, key, value)) for i, (key, value) in enumerate(zip(keys, values, strict=True))]
        writer = BatchWriter(conn, load_target(conn, TableConfig((None, name), "upsert", ("k",))))
        writer.write(ops)
    engine.dispose()
    assert list(writer.rejected) == [1] and writer.rejected[1].error_class == "ForeignKeyViolation"
    assert services.sql(f"SELECT k, v FROM {name} ORDER BY k") == [(1, 2)]


@pytest.mark.parametrize("stored", [False, True])
def test_keys_equal_to_the_database_in_a_one_shape_checkpoint(services, stored):
    """Upserts of one shape are tried without grouping their keys first: `1.0` and `1` in
    one checkpoint meet in one INSERT … ON CONFLICT (21000, or a unique violation for the
    COPY of new keys), and the checkpoint is then written with the keys grouped — the
    last record wins, as one at a time."""
    name = f"numkeys_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (k numeric PRIMARY KEY, v bigint)")
    if stored:
        services.sql(f"INSERT INTO {name} VALUES (1, 0), (2, 0)")
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        spec = reflect_table(conn, None, name)
        mapper = RowMapper(spec.columns, "upsert", ["k"])
        docs = [{"k": "1.0", "v": 1}, {"k": 2, "v": 5}, {"k": "1", "v": 2}]
        ops = [mapper(Record("t", 0, i, None, orjson.dumps(doc))) for i, doc in enumerate(docs)]
        target = load_target(conn, TableConfig((None, name), "upsert", ("k",)))
        assert target.keys_by_database  # numeric: texts that differ may be one key
        writer = BatchWriter(conn, target)
        writer.write(ops)
    engine.dispose()
    assert writer.rejected == {}
    assert services.sql(f"SELECT k::text, v FROM {name} ORDER BY k") == [("1", 2), ("2", 5)]
