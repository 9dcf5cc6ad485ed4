"""Several tables written in one commit transaction (RoutedWriter): each table's writer
stages its rows in temporary tables of its own, so tables that all need stages (stored
keys merged, keys the database groups, insert-ignore's ordered stage) share one
transaction. Real PostgreSQL."""

from __future__ import annotations

import uuid

import orjson
import pytest

from connector.models import Record
from connector.routing import TableConfig
from connector.sink.connection import engine_for
from connector.sink.mapping import RowMapper
from connector.sink.routed import RoutedWriter, spans_of
from connector.sink.table import load_target

pytestmark = pytest.mark.integration
MODES = {"merged_a": "upsert", "merged_b": "upsert", "first_wins": "insert-ignore"}


@pytest.fixture
def schema(services):
    name = f"routedw_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE SCHEMA {name}")
    for table in MODES:  # numeric keys: '1.0' and 1 are one key to PostgreSQL, two texts to Python
        services.sql(f"CREATE TABLE {name}.{table} (id numeric PRIMARY KEY, name text)")
    return name


def write(services, schema, docs):
    """One transaction writing `docs` (topic, document) into the table named by each topic."""
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        targets = {t: load_target(conn, TableConfig((schema, t), mode, ("id",))) for t, mode in MODES.items()}
        mappers = {t: RowMapper(target.columns, MODES[t], ("id",)) for t, target in targets.items()}
        ops = [mappers[topic](Record(topic, 0, i, None, orjson.dumps(doc))) for i, (topic, doc) in enumerate(docs)]
        writer = RoutedWriter(conn, targets.__getitem__)
        writer.write(spans_of([topic for topic, _ in docs]), ops)
    engine.dispose()
    return writer


def rows(services, schema, table):
    return sorted((str(r[0]), r[1]) for r in services.sql(f"SELECT id, name FROM {schema}.{table}"))


def test_tables_that_all_need_stage_tables_share_one_transaction(services, schema):
    write(services, schema, [(t, {"id": i, "name": f"old «{t}» {i}"}) for t in MODES for i in (1, 2)])
    again = [(t, {"id": 2, "name": f"new\t\"{t}\" é"}) for t in MODES]  # a stored key in every table
    again += [(t, {"id": n, "name": f"{t} as {n}"}) for t in MODES for n in (3, "3.0")]  # one key, two texts
    writer = write(services, schema, again)
    assert writer.rejected == {}
    for t in ("merged_a", "merged_b"):  # the later record of a key wins, its key's text too
        assert rows(services, schema, t) == [("1", f"old «{t}» 1"), ("2", f"new\t\"{t}\" é"), ("3.0", f"{t} as 3.0")]
    assert rows(services, schema, "first_wins") == [("1", "old «first_wins» 1"), ("2", "old «first_wins» 2"),
                                                     ("3", "first_wins as 3")]
    assert writer.tables == {f"{schema}.merged_a": 3, f"{schema}.merged_b": 3, f"{schema}.first_wins": 1}
