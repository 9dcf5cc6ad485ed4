"""Tables created and evolved (SINK_AUTO_CREATE, SINK_AUTO_EVOLVE): which column a
field becomes, and the DDL that makes it, run inside the commit transaction.

A field's column is named as the field (after SINK_FLATTEN and SINK_FIELDS_RENAME) and
typed by its first value that is not null:

| value                                    | column                |
| ---------------------------------------- | --------------------- |
| true / false                             | boolean               |
| an integer within bigint                 | bigint                |
| any other number (a fraction, 1e3, huge) | numeric (as written)  |
| a string                                 | text                  |
| an object or an array                    | jsonb                 |
| bytes, a timestamp with or without zone, | bytea, timestamptz or |
| a date, a time, a UUID (registry formats | timestamp, date, time,|
| decode these)                            | uuid                  |

A field whose value is null makes no column until a record gives it a value (nothing is
lost: the column would hold NULL). Metadata columns (SINK_METADATA_COLUMNS) take their
metadata's type. The DDL is transactional: a crash before the commit leaves the table as
it was, and the records are mapped again on recovery, which evolves it again.

The catalog (sink/catalog.py) decides when a table changes; `ensure` changes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa

from connector.sink.layout import ColumnSpec
from connector.sink.statements import DIALECT

_quote = DIALECT.identifier_preparer
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL truncates a longer name: the column would not be found again
BIGINT = 2 ** 63
METADATA_TYPES = {"topic": ("text", "text"), "partition": ("integer", "integer"), "offset": ("bigint", "bigint"),
                  "timestamp": ("timestamptz", "timestamptz"), "headers": ("jsonb", "jsonb")}


class NewColumn(NamedTuple):
    """A column a table gets: its spec (as reflection would give it) and its SQL type."""

    spec: ColumnSpec
    sql_type: str


class TableChanges(NamedTuple):
    """What a commit does to a table before writing its rows: `create` (a table that
    does not exist is created with these columns) and `add` (columns added if missing)."""

    create: tuple[NewColumn, ...] = ()
    add: tuple[NewColumn, ...] = ()


NO_CHANGES = TableChanges()


def column_type(value: Any) -> tuple[str, str]:
    """(SQL type, ColumnSpec kind) of a field's first non-null value (table above)."""
    if isinstance(value, bool):
        return "boolean", "boolean"
    if isinstance(value, int):
        return ("bigint", "bigint") if -BIGINT <= value < BIGINT else ("numeric", "numeric")
    if isinstance(value, float | Decimal):
        return "numeric", "numeric"
    if isinstance(value, str):
        return "text", "text"
    if isinstance(value, bytes):
        return "bytea", "bytea"
    if isinstance(value, datetime):
        return ("timestamptz", "timestamptz") if value.tzinfo is not None else ("timestamp", "timestamp")
    for cls, name in ((date, "date"), (time, "time"), (uuid.UUID, "uuid")):
        if isinstance(value, cls):
            return name, name
    return "jsonb", "jsonb"


def identifier_problem(name: str) -> str | None:
    """Why `name` cannot be a column's name, or None."""
    if not name:
        return "an empty name"
    if "\x00" in name:
        return "a NUL in its name"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_IDENTIFIER_BYTES:
        return f"a name of {size} bytes (PostgreSQL keeps {MAX_IDENTIFIER_BYTES})"
    return None


def new_columns(fields: Mapping[str, Any], renamed: Mapping[str, str], keys: Sequence[str] = (),
                declared: Mapping[str, tuple[str, str]] | None = None) -> list[NewColumn]:
    """The columns of `fields` (name -> first value), named as SINK_FIELDS_RENAME says
    (`renamed`: field -> column), typed as `declared` (the writer's schema) says, else by
    the value (not null); key columns are NOT NULL."""
    columns = []
    for field, value in fields.items():
        name = renamed.get(field, field)
        sql_type, kind = (declared or {}).get(field) or column_type(value)
        spec = ColumnSpec(name, kind, name not in keys, False, None, None if name == field else field)
        columns.append(NewColumn(spec, f"{sql_type} NOT NULL" if name in keys else sql_type))
    return columns


def metadata_columns(metadata: Sequence[tuple[str, str]]) -> list[NewColumn]:
    """The columns SINK_METADATA_COLUMNS names, typed by their metadata."""
    return [NewColumn(ColumnSpec(column, METADATA_TYPES[field][1]), METADATA_TYPES[field][0])
            for field, column in metadata]


def _definition(column: NewColumn) -> str:
    return f"{_quote.quote(column.spec.name)} {column.sql_type}"


def _table_name(table: sa.Table) -> str:
    return str(_quote.format_table(table))


def lock_sql() -> str:
    """One replica at a time changes a table (two CREATE TABLE IF NOT EXISTS at once may
    fail on the catalog's unique index); held to the end of the transaction."""
    return "SELECT pg_advisory_xact_lock(hashtext('eos-connector ddl'), hashtext(%(schema)s || '.' || %(name)s))"


def present_columns_sql() -> str:
    """The columns the table has now (no row when it does not exist). Read from the
    catalog tables by name, with the statement's own snapshot, so what another replica
    committed a moment ago is seen (to_regclass's cached catalog view may miss it)."""
    return ("SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %(schema)s AND c.relname = %(name)s AND a.attnum > 0 AND NOT a.attisdropped")


def create_sql(table: sa.Table, columns: Sequence[NewColumn], keys: Sequence[str]) -> str:
    key = f", PRIMARY KEY ({', '.join(_quote.quote(k) for k in keys)})" if keys else ""
    return f"CREATE TABLE IF NOT EXISTS {_table_name(table)} ({', '.join(map(_definition, columns))}{key})"


def add_sql(table: sa.Table, column: NewColumn) -> str:
    return f"ALTER TABLE {_table_name(table)} ADD COLUMN IF NOT EXISTS {_definition(column)}"


def ensure(conn: sa.Connection, table: sa.Table, changes: TableChanges, keys: Sequence[str]) -> list[str]:
    """Give `table` (its schema named) the columns `changes` name, inside the caller's
    transaction; the DDL run. Nothing for a table as read at start; one catalog query for
    a table this replica changed, when another commit has made the change already."""
    wanted = [*changes.create, *changes.add]
    if not wanted:  # a table as read at start: not a query
        return []
    name = {"schema": table.schema, "name": table.name}
    if {row[0] for row in conn.exec_driver_sql(present_columns_sql(), name)}.issuperset(c.spec.name for c in wanted):
        return []
    conn.exec_driver_sql(lock_sql(), name)
    present = {row[0] for row in conn.exec_driver_sql(present_columns_sql(), name)}  # as the last changer left it
    if not present:  # IF NOT EXISTS all the same: the statements check again under their own locks
        statements = [create_sql(table, wanted, keys)] if changes.create else []  # not created: dropped under us
    else:
        statements = [add_sql(table, column) for column in wanted if column.spec.name not in present]
    for statement in statements:
        conn.exec_driver_sql(statement)
    return [statement.replace("%%", "%") for statement in statements]  # as PostgreSQL ran them
