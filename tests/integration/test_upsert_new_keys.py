"""Upsert batches tried as plain COPY (NewKeys): rows whose keys are all new land by
COPY; a batch meeting a stored key is rolled back to its savepoint and merged, with the
same result a merge alone gives (last write wins, additive columns summed), and a
refused row is still isolated. Real PostgreSQL."""

from __future__ import annotations

import uuid

import orjson
import pytest

from connector.models import Record
from connector.routing import TableConfig
from connector.sink.connection import engine_for
from connector.sink.mapping import RowMapper
from connector.sink.new_keys import NewKeys
from connector.sink.table import load_target, reflect_table
from connector.sink.writer import BatchWriter

pytestmark = pytest.mark.integration


@pytest.fixture
def table(services):
    name = f"newkeys_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (id bigint PRIMARY KEY, name text, n numeric CHECK (n < 100))")
    return name


def write(services, table, new_keys, docs):
    """One commit transaction's write of `docs` (upsert, `n` additive); the writer."""
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        spec = reflect_table(conn, None, table)
        mapper = RowMapper(spec.columns, "upsert", ["id"])
        ops = [mapper(Record("t", 0, i, None, orjson.dumps(doc))) for i, doc in enumerate(docs)]
        target = load_target(conn, TableConfig((None, table), "upsert", ("id",), ("n",)))
        writer = BatchWriter(conn, target, new_keys)
        writer.write(ops)
    engine.dispose()
    return writer


def rows(services, table):
    return {r[0]: (r[1], int(r[2])) for r in services.sql(f"SELECT id, name, n FROM {table}")}


def test_new_keys_land_by_copy_and_a_stored_key_falls_back_to_the_merge(services, table):
    new_keys = NewKeys()
    write(services, table, new_keys, [{"id": i, "name": f"a{i}", "n": 1} for i in range(3)])
    assert rows(services, table) == {0: ("a0", 1), 1: ("a1", 1), 2: ("a2", 1)}
    assert new_keys.worth_trying()  # the COPY went through: keep trying
    write(services, table, new_keys, [{"id": 2, "name": "b2", "n": 5}, {"id": 3, "name": "b3", "n": 7}])
    assert rows(services, table) == {0: ("a0", 1), 1: ("a1", 1), 2: ("b2", 6), 3: ("b3", 7)}
    assert not new_keys.worth_trying() and new_keys.worth_trying()  # one batch merged straight away, then a try


def test_a_refused_row_in_a_new_keys_batch_is_isolated(services, table):
    new_keys = NewKeys()
    docs = [{"id": 1, "name": "x", "n": 1}, {"id": 2, "name": "y", "n": 500}, {"id": 3, "name": "z", "n": 1}]
    writer = write(services, table, new_keys, docs)
    assert set(writer.rejected) == {1} and "23514" in writer.rejected[1].error  # the CHECK constraint
    assert rows(services, table) == {1: ("x", 1), 3: ("z", 1)}
