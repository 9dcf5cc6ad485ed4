"""Hostile identifiers from configuration — quotes, semicolons, spaces, Unicode, dots —
work end to end because the library quotes them; names PostgreSQL would silently
truncate are refused with a clear error. Record content never becomes SQL text."""

from __future__ import annotations

import orjson
import pytest

pytestmark = pytest.mark.integration
SCHEMA = 'Sch"ema; DROP SCHEMA public --'
TABLE = 'Tab.le "x"; DELETE FROM pg_class; --'
KEY, VALUE = 'I""d', "välue; ' OR 1=1 --"  # KEY as PostgreSQL sees it: I"d


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_hostile_names_work_in_upsert_mode(make_pipeline):
    key = KEY.replace('""', '"')
    p = make_pipeline(f"CREATE SCHEMA IF NOT EXISTS {quoted(SCHEMA)}; "
                      f"CREATE TABLE {quoted(SCHEMA)}.{quoted(TABLE + '{table}')} "
                      f"({quoted(key)} int PRIMARY KEY, {quoted(VALUE)} text)")
    table = f"{quoted(SCHEMA)}.{quoted(TABLE + p.table)}"
    hostile_text = "'); DROP TABLE x; --\\\" $$ \\x00"
    records = [(str(i).encode(), orjson.dumps({key: i, VALUE: f"{hostile_text} {i}"})) for i in range(40)]
    p.produce(records)
    replica = p.start(SINK_MODE="upsert", SINK_TABLE=table, CONNECTOR_SCHEMA='eos "book"; keeping',
                      CONNECTOR_NAME="pipe'; DROP TABLE offsets; --")
    p.table = table
    p.wait_for_rows(40, 60, replica)
    assert replica.stop() == 0
    rows = sorted(p.rows(f"{quoted(key)}, {quoted(VALUE)}"))
    assert rows == [(i, f"{hostile_text} {i}") for i in range(40)]
    assert p.services.sql('SELECT count(*) FROM "eos ""book""; keeping".offsets '
                          "WHERE pipeline = 'pipe''; DROP TABLE offsets; --'")[0][0] == 4


def test_names_postgresql_would_truncate_are_refused(make_pipeline):
    p = make_pipeline("CREATE TABLE {table} (id int)")
    replica = p.start(SINK_TABLE="t" * 64, CONNECTOR_SCHEMA="é" * 32)
    assert replica.wait(30) == 2
    out = replica.output()
    assert "SINK_TABLE: " in out and "longer than 63 bytes" in out and "CONNECTOR_SCHEMA: " in out
