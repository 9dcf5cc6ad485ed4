"""The column a field becomes (SINK_AUTO_CREATE, SINK_AUTO_EVOLVE): its type from its first
value, names PostgreSQL would cut refused, and the DDL quoting any name. Pure."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connector.sink.declared import avro_types, json_schema_types
from connector.sink.evolution import add_sql, column_type, create_sql, identifier_problem, new_columns


@pytest.mark.parametrize("value, expected", [
    (True, "boolean"), (0, "bigint"), (-2 ** 63, "bigint"), (2 ** 63 - 1, "bigint"), (2 ** 63, "numeric"),
    (2.1, "numeric"), (Decimal("2.10"), "numeric"), ("Zoë \"q\"\t\\", "text"), ("2026-12-04T10:00:00Z", "text"),
    ({"k": [1]}, "jsonb"), ([], "jsonb"), (b"\x00\xff", "bytea"), (datetime(2026, 12, 4, tzinfo=UTC), "timestamptz"),
    (datetime(2026, 12, 4), "timestamp"), (date(2026, 12, 4), "date"), (time(10, 0), "time"),
    (uuid.UUID(int=7), "uuid"),
])
def test_a_fields_first_value_types_its_column(value, expected):
    assert column_type(value)[0] == expected


@pytest.mark.parametrize("name, problem", [
    ("", "an empty name"), ("a\x00b", "a NUL in its name"), ("é" * 32, "a name of 64 bytes (PostgreSQL keeps 63)"),
])
def test_names_postgresql_would_cut_or_refuse(name, problem):
    assert identifier_problem(name) == problem


def test_names_postgresql_keeps():
    assert identifier_problem("é" * 31 + "x") is None and identifier_problem('Wé "q"; DROP TABLE x; --') is None


def test_renamed_fields_and_key_columns():
    columns = new_columns({"uid": 1, "note": "n"}, {"uid": "user_id"}, keys=("user_id",))
    assert [(c.spec.name, c.spec.source, c.spec.nullable, c.sql_type) for c in columns] == [
        ("user_id", "uid", False, "bigint NOT NULL"), ("note", "note", True, "text")]


def test_ddl_quotes_every_name():
    """As the driver takes it: a `%` doubled (psycopg's placeholders)."""
    table = sa.Table('Odd "T"', sa.MetaData(), schema="My Schema")
    columns = new_columns({'a "b"': 1, "100%": "x"}, {})
    assert create_sql(table, columns, ('a "b"',)) == ('CREATE TABLE IF NOT EXISTS "My Schema"."Odd ""T""" '
                                                      '("a ""b""" bigint, "100%%" text, PRIMARY KEY ("a ""b"""))')
    assert add_sql(table, columns[1]) == 'ALTER TABLE "My Schema"."Odd ""T""" ADD COLUMN IF NOT EXISTS "100%%" text'


def test_avro_fields_typed_as_the_writer_declared_them():
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": ["null", "long"]}, {"name": "b", "type": {"type": "int"}},
        {"name": "c", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 4}},
        {"name": "d", "type": {"type": "array", "items": ["null", "string"]}},
        {"name": "e", "type": {"type": "array", "items": {"type": "record", "name": "I", "fields": []}}},
        {"name": "f", "type": {"type": "map", "values": "long"}}, {"name": "g", "type": "I"},
        {"name": "h", "type": {"type": "enum", "name": "E", "symbols": ["X"]}},
        {"name": "i", "type": ["null", "string", "long"]},
        {"name": "j", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "k", "type": {"type": "string", "logicalType": "uuid"}}]}
    assert {name: sql for name, (sql, _) in avro_types(schema).items()} == {
        "a": "bigint", "b": "integer", "c": "numeric(30, 4)", "d": "text[]", "e": "jsonb", "f": "jsonb", "g": "jsonb",
        "h": "text", "i": "jsonb", "j": "timestamp", "k": "uuid"}
    assert avro_types("string") == {} and avro_types(None) == {}


def test_json_schema_properties_typed_as_declared():
    schema = {"type": "object", "properties": {
        "a": {"type": "integer"}, "b": {"type": ["number", "null"]}, "c": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "email"}, "e": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        "f": {"type": "object"}, "g": {"$ref": "#/definitions/x"}, "h": {"type": ["string", "integer"]},
        "i": {"type": "boolean"}}}
    assert {name: sql for name, (sql, _) in json_schema_types(schema).items()} == {
        "a": "bigint", "b": "numeric", "c": "timestamptz", "d": "text", "e": "uuid[]", "f": "jsonb", "g": "jsonb",
        "h": "jsonb", "i": "boolean"}
    assert json_schema_types({"type": "string"}) == {}
