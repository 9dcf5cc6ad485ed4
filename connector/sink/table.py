"""What the sink table looks like: reflected once at start, checked against the
settings, then plain data. Reads only: `check` and `deadletters` use it as `run` does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from connector.errors import SchemaError, TableMissing
from connector.formats import ValueDecoder, decode_json_key
from connector.routing import TableConfig
from connector.sink.evolution import NO_CHANGES, NewColumn, TableChanges
from connector.sink.layout import ColumnSpec
from connector.sink.mapping import RowMapper
from connector.sink.watch import FieldWatch


@dataclass(frozen=True)
class TableSpec:
    schema: str | None
    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def sa_table(self) -> sa.Table:
        """A lightweight Table object for building statements (names only)."""
        return sa.Table(self.name, sa.MetaData(), *(sa.Column(c.name) for c in self.columns), schema=self.schema)


def column_kind(sa_type: sa.types.TypeEngine[Any]) -> tuple[str, int | None]:
    """The mapping kind of a reflected column type, and its length bound if any."""
    checks: Sequence[tuple[type, str]] = (
        (sa.SmallInteger, "smallint"),
        (sa.BigInteger, "bigint"),
        (sa.Integer, "integer"),
        (sa.REAL, "real"),  # float4: the binary fast path sends it as one
        (sa.Float, "float"),
        (sa.Numeric, "numeric"),
        (sa.Boolean, "boolean"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (pg.JSONB, "jsonb"),  # before JSON, its base class: jsonb keeps no text, the C step writes it
        (sa.JSON, "json"),
        (sa.Uuid, "uuid"),
        (sa.LargeBinary, "bytea"),
    )
    if isinstance(sa_type, sa.ARRAY):  # any dimensions: an element's kind (sink/arrays.py)
        item = column_kind(sa_type.item_type)[0]
        if item == "text" and not isinstance(sa_type.item_type, sa.Text):
            item = "varchar"  # varchar(n)[], char(n)[]: their element type is not text's, which the C step writes
        return f"{item}[]", None
    if isinstance(sa_type, sa.DateTime):
        return ("timestamptz" if sa_type.timezone else "timestamp", None)
    if isinstance(sa_type, sa.String) and not isinstance(sa_type, sa.Enum):
        return "text", getattr(sa_type, "length", None)
    for cls, kind in checks:
        if isinstance(sa_type, cls):
            return kind, None
    return "other", None


def _resolve_schema(connection: sa.Connection, name: str) -> str | None:
    """The schema that holds an unqualified table name, found through search_path."""
    query = sa.text(
        "SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(quote_ident(:name))"
    )
    return connection.execute(query, {"name": name}).scalar()


def reflect_table(connection: sa.Connection, schema: str | None, name: str) -> TableSpec:
    """Describe `schema.name` (an unqualified name is looked up through search_path);
    SchemaError when it does not exist."""
    schema = schema or _resolve_schema(connection, name)
    inspector = sa.inspect(connection)
    if schema is None or not inspector.has_table(name, schema=schema):
        shown = f"{schema}.{name}" if schema else name
        raise TableMissing(f"SINK_TABLE {shown!r} does not exist (create it before starting the connector, or set "
                           "SINK_AUTO_CREATE=true)")
    columns = []
    for col in inspector.get_columns(name, schema=schema):
        if col.get("computed"):  # a generated column takes no value: records cannot name it
            continue
        kind, length = column_kind(col["type"])
        has_default = col.get("default") is not None or bool(col.get("identity"))
        columns.append(ColumnSpec(col["name"], kind, bool(col["nullable"]), has_default, length))
    pk = tuple(inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or ())
    uniques = [tuple(u["column_names"]) for u in inspector.get_unique_constraints(name, schema=schema)]
    for index in inspector.get_indexes(name, schema=schema):
        names = [c for c in index["column_names"] if c is not None]  # None: an expression
        partial = index.get("dialect_options", {}).get("postgresql_where")
        if index.get("unique") and len(names) == len(index["column_names"]) and not partial:
            uniques.append(tuple(names))
    return TableSpec(schema, name, tuple(columns), pk, tuple(uniques))


def resolve_key_columns(table: TableSpec, configured: Sequence[str] | None, mode: str = "upsert") -> tuple[str, ...]:
    """The key of upsert and insert-ignore: SINK_KEY_COLUMNS, else the primary key. It
    must name columns of the table and match a primary key or unique constraint (ON
    CONFLICT needs one)."""
    keys = tuple(configured) if configured else table.primary_key
    if not keys:
        raise SchemaError(f"{mode} mode needs SINK_KEY_COLUMNS or a primary key on {table.qualified!r}")
    names = {c.name for c in table.columns}
    unknown = [k for k in keys if k not in names]
    if unknown:
        raise SchemaError(f"SINK_KEY_COLUMNS names column(s) {unknown} that {table.qualified!r} does not have")
    constraints = [table.primary_key, *table.unique_keys]
    if not any(set(keys) == set(c) for c in constraints if c):
        raise SchemaError(
            f"SINK_KEY_COLUMNS {list(keys)} match no primary key or unique constraint of "
            f"{table.qualified!r}; upsert needs one (ON CONFLICT)"
        )
    return keys


# Types whose values the mapper writes in one canonical text (integers, uuid, boolean,
# ISO dates) or as sent (text, varchar): under a deterministic collation two of them are
# one key exactly when their texts are equal.
_TEXT_EQUAL_TYPES = frozenset({"int2", "int4", "int8", "uuid", "bool", "date", "text", "varchar"})
_TEXT_EQUAL_KINDS = frozenset({"smallint", "integer", "bigint", "uuid", "boolean", "date", "text"})


def keys_equal_as_text(connection: sa.Connection, table: TableSpec, keys: Sequence[str]) -> bool:
    """Whether PostgreSQL finds two keys of `table` equal only when their COPY texts are:
    false for numeric, floating point, timestamps, char(n), citext, a non-deterministic
    collation, a domain… (then the writer lets the database group a checkpoint's keys)."""
    query = sa.text(
        "SELECT t.typname, coalesce(c.collisdeterministic, true) FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation "
        "WHERE a.attrelid = (quote_ident(:schema) || '.' || quote_ident(:name))::regclass AND a.attname = ANY(:keys)")
    found = connection.execute(query, {"schema": table.schema, "name": table.name, "keys": list(keys)}).all()
    return len(found) == len(keys) and all(typname in _TEXT_EQUAL_TYPES and deterministic
                                           for typname, deterministic in found)


FLOAT_KINDS = frozenset({"float", "real"})
NUMERIC_KINDS = frozenset({"smallint", "integer", "bigint", "numeric", *FLOAT_KINDS})


def check_additive_columns(table: TableSpec, keys: Sequence[str], additive: Sequence[str]) -> None:
    """SINK_ADDITIVE_COLUMNS must name numeric, non-key columns of the table."""
    kinds = {c.name: c.kind for c in table.columns}
    bad = [c for c in additive if kinds.get(c) not in NUMERIC_KINDS or c in keys]
    if bad:
        raise SchemaError(f"SINK_ADDITIVE_COLUMNS {bad} must be numeric, non-key columns of {table.qualified!r}")


INSERT_IGNORE = "insert-ignore"


@dataclass(frozen=True)
class Target:
    """The sink table as the writer needs it: reflected, validated against the settings."""

    spec: TableSpec
    table: sa.Table  # names only, for building statements
    mode: str
    key_columns: tuple[str, ...]
    additive_columns: tuple[str, ...]
    summed_by_database: frozenset[str]  # floating-point additive columns: PostgreSQL sums them
    keys_by_database: bool  # key texts that differ may be one key to PostgreSQL
    columns: tuple[ColumnSpec, ...]  # those a record fills, each with its field (SINK_FIELDS_*)
    version_column: str | None = None  # SINK_VERSION_COLUMN: a stored row is replaced only by a greater one
    changes: TableChanges = NO_CHANGES  # SINK_AUTO_CREATE / SINK_AUTO_EVOLVE: made by the commit before its rows

    def mapper(self, metadata_columns: Sequence[tuple[str, str]], decode_value: ValueDecoder,
               zone: tzinfo = UTC, flatten_with: str | None = None, decode_key: ValueDecoder = decode_json_key,
               watch: FieldWatch | None = None) -> RowMapper:
        return RowMapper(self.columns, self.mode, self.key_columns, metadata_columns, decode_value, zone, flatten_with,
                         decode_key, tuple(c.spec for c in self.changes.add), watch, self.additive_columns)

    def evolved(self, new: Sequence[NewColumn]) -> Target:
        """This table with `new` columns added (by the commit that writes their rows)."""
        spec = replace(self.spec, columns=self.spec.columns + tuple(c.spec for c in new))
        return replace(self, spec=spec, table=spec.sa_table(), changes=self.changes._replace(add=self.changes.add + tuple(new)))


def created_target(config: TableConfig, schema: str | None, columns: Sequence[NewColumn]) -> Target:
    """A table that does not exist yet, as SINK_AUTO_CREATE makes it in `schema` from
    `columns` (the key columns among them make its primary key). SchemaError when it
    cannot be."""
    keys = config.key_columns if config.mode in (INSERT_IGNORE, "upsert") else ()
    spec = TableSpec(schema, config.name[1], tuple(c.spec for c in columns), keys, ())
    if config.mode in (INSERT_IGNORE, "upsert"):
        resolve_key_columns(spec, keys, config.mode)
    check_additive_columns(spec, keys, config.additive_columns if config.mode == "upsert" else ())
    check_version_column(spec, keys, config.version_column)
    kinds = {c.name: c.kind for c in spec.columns}
    return Target(spec, spec.sa_table(), config.mode, keys, config.additive_columns,
                  frozenset(c for c in config.additive_columns if kinds.get(c) in FLOAT_KINDS),
                  not all(kinds[k] in _TEXT_EQUAL_KINDS for k in keys), filled_columns(spec, config, keys),
                  config.version_column, TableChanges(create=tuple(columns)))


def load_target(conn: sa.Connection, config: TableConfig) -> Target:
    """Reflect the sink table and check it fits the settings; reads only (SchemaError
    names what does not fit)."""
    spec = reflect_table(conn, *config.name)
    keys: tuple[str, ...] = ()
    keys_by_database = False
    summed: frozenset[str] = frozenset()
    if config.mode in (INSERT_IGNORE, "upsert"):
        keys = resolve_key_columns(spec, config.key_columns, config.mode)
    if config.mode == "upsert":
        keys_by_database = not keys_equal_as_text(conn, spec, keys)
        check_additive_columns(spec, keys, config.additive_columns)
        summed = frozenset(c.name for c in spec.columns if c.name in config.additive_columns and c.kind in FLOAT_KINDS)
    names = {c.name for c in spec.columns}
    missing = [f"{column!r} (for the record's {field})" for field, column in config.metadata_columns
               if column not in names]
    if missing:
        raise SchemaError(f"SINK_METADATA_COLUMNS: table {spec.qualified!r} has no column {', '.join(missing)}")
    check_version_column(spec, keys, config.version_column)
    return Target(spec, spec.sa_table(), config.mode, keys, config.additive_columns, summed, keys_by_database,
                  filled_columns(spec, config, keys), config.version_column)


VERSION_KINDS = frozenset({*NUMERIC_KINDS, "timestamp", "timestamptz", "date", "text"})


def check_version_column(spec: TableSpec, keys: Sequence[str], version: str | None) -> None:
    """SINK_VERSION_COLUMN names an ordered, non-key column of the table."""
    kinds = {c.name: c.kind for c in spec.columns}
    if version is not None and (kinds.get(version) not in VERSION_KINDS or version in keys):
        raise SchemaError(f"SINK_VERSION_COLUMN {version!r} must be a non-key column of {spec.qualified!r} of an "
                          "ordered type (integer, numeric, floating point, timestamp, date or text)")


def filled_columns(spec: TableSpec, config: TableConfig, keys: Sequence[str]) -> tuple[ColumnSpec, ...]:
    """The columns a record fills, each with the field that fills it (SINK_FIELDS_*);
    metadata columns are the record's metadata's. SchemaError when a rename names no
    column, or a NOT NULL column without a default (or a key column) is left unfilled."""
    rules, names = config.fields, {c.name for c in spec.columns}
    unknown = [new for _, new in rules.rename if new not in names]
    if unknown:
        raise SchemaError(f"SINK_FIELDS_RENAME: table {spec.qualified!r} has no column {', '.join(map(repr, unknown))}")
    metadata = {column for _, column in config.metadata_columns}
    columns, unfilled = [], []
    for column in spec.columns:
        source = column.name if column.name in metadata else rules.source(column.name)
        if source is not None:
            columns.append(replace(column, field=None if source == column.name else source))
        elif column.name in keys or (not column.nullable and not column.has_default):
            unfilled.append(column.name)
    if unfilled:
        raise SchemaError(f"SINK_FIELDS_*: no field fills column(s) {', '.join(map(repr, unfilled))} of "
                          f"{spec.qualified!r}, a key or NOT NULL without a default")
    if not columns:
        raise SchemaError(f"SINK_FIELDS_*: no field fills any column of {spec.qualified!r}")
    return tuple(columns)
