"""The pipeline's tables: for each topic, the table its route names (connector/routing.py),
read and checked once, the first time the topic is met, and the mapper of its records.

Tables are read on a connection of the catalog's own, opened for the read and closed
after it: the loop meets a new topic (KAFKA_TOPICS_REGEX) while the commit worker may be
inside a transaction on the pipeline's connection.

A table changes here, in memory, as records are mapped (sink/evolution.py has the
rules): SINK_AUTO_CREATE makes a missing table's columns from its first record,
SINK_AUTO_EVOLVE adds a column for a field no column takes, and the commit that writes
their rows makes them in the database. Without SINK_AUTO_EVOLVE such a field is left,
logged once per table and field and counted (`unknown_values`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, tzinfo
from typing import Any, NamedTuple

import sqlalchemy as sa

from connector.errors import MappingError, SchemaError, TableMissing
from connector.fields import flatten
from connector.formats import RegistryDecoder, ValueDecoder, decode_json, decode_json_key
from connector.models import Record
from connector.routing import Routes, TableConfig
from connector.sink.connection import Database
from connector.sink.evolution import NewColumn, identifier_problem, metadata_columns, new_columns
from connector.sink.mapping import Op, RowMapper
from connector.sink.table import TableSpec, Target, created_target, load_target

log = logging.getLogger(__name__)
CURRENT_SCHEMA = sa.text("SELECT current_schema()")


class SchemaChanges(NamedTuple):
    """SINK_AUTO_CREATE and SINK_AUTO_EVOLVE."""

    create: bool = False
    evolve: bool = False


FIXED_TABLES = SchemaChanges()


# The count of a table's field no column takes: (table, field) -> what to call once per value.
UnknownValues = Callable[[str, str], Callable[[], None]]


def _nothing() -> None:
    pass


def uncounted(table: str, field: str) -> Callable[[], None]:
    return _nothing


class Watch:
    """One table's FieldWatch: a field no column takes gets one (SINK_AUTO_EVOLVE: its
    first value that is not null types it), or is left, logged once and counted."""

    def __init__(self, catalog: Catalog, config: TableConfig, table: str) -> None:
        self.rules, self._catalog, self._config, self._table = config.fields, catalog, config, table
        self._told: dict[str, Callable[[], None]] = {}  # each field told of, and its count

    def met(self, record: Record, fields: dict[str, Any]) -> Mapper | None:
        if self._catalog.changes.evolve:
            return self._catalog.evolve(self._config, record, fields)
        for name in fields:
            if name not in self._told:
                self._told[name] = self._catalog.unknown_values(self._table, name)
                log.warning("table %r has no column for field %r (first met in %s): its values are not written "
                            "(SINK_AUTO_EVOLVE=true adds a column; SINK_FIELDS_EXCLUDE=%s says it is meant)",
                            self._table, name, record.where(), name)
            self._told[name]()
        return None

    def counted(self, names: Sequence[str]) -> bool:
        told = self._told
        if self._catalog.changes.evolve or not told.keys() >= set(names):
            return False
        for name in names:
            told[name]()
        return True


class Maker:
    """The mapper of a table SINK_AUTO_CREATE makes: its first record gives its columns."""

    fast = None

    def __init__(self, catalog: Catalog, config: TableConfig) -> None:
        self._catalog, self._config = catalog, config

    def __call__(self, record: Record) -> Op:
        return self._catalog.create(self._config, record)(record)


Mapper = RowMapper | Maker


class Catalog:
    """Topic -> table, read lazily and kept; thread-safe."""

    def __init__(self, routes: Routes, url: str, schema: str, decode_value: ValueDecoder = decode_json,
                 zone: tzinfo = UTC, decode_key: ValueDecoder = decode_json_key,
                 changes: SchemaChanges = FIXED_TABLES,
                 unknown_values: UnknownValues = uncounted) -> None:
        self.routes, self._decoders, self._zone = routes, (decode_value, decode_key), zone
        self.changes, self.unknown_values = changes, unknown_values
        self._db = Database(url, schema)
        self._lock = threading.RLock()
        self._tables: dict[tuple[str | None, str], tuple[Target, Mapper]] = {}
        self._by_topic: dict[str, tuple[Target, Mapper]] = {}

    def load(self, topics: Iterable[str]) -> None:
        """Read the tables of `topics` now, and the one table when every topic goes to it
        (start-up: a table that does not fit stops the replica before it reads a record)."""
        if not self.routes.by_topic:
            with self._lock:
                self._table(self.routes.config_for(""))
        for topic in topics:
            self._entry(topic)

    def target(self, topic: str) -> Target:
        return (self._by_topic.get(topic) or self._entry(topic))[0]

    def mapper(self, topic: str) -> Mapper:
        return (self._by_topic.get(topic) or self._entry(topic))[1]

    def _entry(self, topic: str) -> tuple[Target, Mapper]:
        with self._lock:
            entry = self._by_topic.get(topic)
            if entry is None:
                config = self.routes.config_for(topic)
                try:
                    entry = self._by_topic[topic] = self._table(config)
                except SchemaError as exc:
                    if not self.routes.by_topic:
                        raise
                    raise SchemaError(f"topic {topic!r} goes to table {config.qualified!r}: {exc}") from exc
                log.info("topic %r goes to table %r (%s)", topic, config.qualified, config.mode)
            return entry

    def _table(self, config: TableConfig) -> tuple[Target, Mapper]:
        entry = self._tables.get(config.name)
        if entry is None:
            entry = self._tables[config.name] = self._read(config)
        return entry

    def _read(self, config: TableConfig) -> tuple[Target, Mapper]:
        try:
            with self._db.reading(f"reading the definition of table {config.qualified!r}") as conn:
                try:
                    target = load_target(conn, config)
                except TableMissing:
                    if not self.changes.create:
                        raise
                    return self._to_make(config, config.name[0] or conn.execute(CURRENT_SCHEMA).scalar())
        finally:
            self._db.close()
        return target, self._mapper(target, config)

    def _to_make(self, config: TableConfig, schema: str | None) -> tuple[Target, Mapper]:
        """A table SINK_AUTO_CREATE makes in `schema` (an unqualified name: the first
        schema of the search path, where PostgreSQL would create it), still without columns."""
        if config.mode != "append" and not config.key_columns:
            raise SchemaError(f"table {config.qualified!r} does not exist: SINK_AUTO_CREATE in {config.mode} mode "
                              "needs SINK_KEY_COLUMNS (the primary key of the table it creates)")
        if schema is None:
            raise SchemaError(f"table {config.qualified!r} does not exist, and no schema of the search path does "
                              "to create it in: name its schema in the route")
        log.info("table %r does not exist: its first record will give its columns (SINK_AUTO_CREATE)",
                 config.qualified)
        spec = TableSpec(schema, config.name[1], (), (), ())
        return Target(spec, spec.sa_table(), config.mode, (), (), frozenset(), False, ()), Maker(self, config)

    def _mapper(self, target: Target, config: TableConfig) -> RowMapper:
        decode_value, decode_key = self._decoders
        return target.mapper(config.metadata_columns, decode_value, self._zone, config.fields.flatten, decode_key,
                             Watch(self, config, target.spec.qualified))

    def _replace(self, config: TableConfig, target: Target) -> RowMapper:
        """`target` and its mapper for `config`'s table, for every topic routed there."""
        entry = target, self._mapper(target, config)
        old = self._tables[config.name]
        self._tables[config.name] = entry
        self._by_topic.update({topic: entry for topic, found in self._by_topic.items() if found is old})
        return entry[1]

    def create(self, config: TableConfig, record: Record) -> Mapper:
        """The mapper of the table `record` is the first record of (SINK_AUTO_CREATE)."""
        with self._lock:
            target, mapper = self._tables[config.name]
            if not isinstance(mapper, Maker):
                return mapper
            columns = [*metadata_columns(config.metadata_columns), *self._first_columns(config, record)]
            _check_names(record, columns)
            target = created_target(config, target.spec.schema, columns)
            log.info("table %r gets columns %s from %s; the commit of its checkpoint creates it", config.qualified,
                     ", ".join(f"{c.spec.name} {c.sql_type}" for c in columns), record.where())
            return self._replace(config, target)

    def evolve(self, config: TableConfig, record: Record, fields: dict[str, Any]) -> Mapper:
        """The mapper of `config`'s table with a column for each of `fields` (SINK_AUTO_EVOLVE):
        the table's mapper as it is when it has them all (a mapper made before they were
        added still maps the rest of its run)."""
        with self._lock:
            target, mapper = self._tables[config.name]
            have, renamed = {c.name for c in target.spec.columns}, dict(config.fields.rename)
            fields = {field: value for field, value in fields.items() if renamed.get(field, field) not in have}
            if not fields:  # the rest of an older mapper's run: no schema to read
                return mapper
            new = new_columns(fields, renamed, (), self._declared(config, record))
            _check_names(record, new)
            log.info("table %r gets column(s) %s for fields first met in %s; the commit of its checkpoint adds them",
                     config.qualified, ", ".join(f"{c.spec.name} {c.sql_type}" for c in new), record.where())
            return self._replace(config, target.evolved(new))

    def _first_columns(self, config: TableConfig, record: Record) -> list[NewColumn]:
        """The columns `record` gives a new table: its value's fields with a value (and
        the key columns from the record key when the value lacks them)."""
        decode_value, decode_key = self._decoders
        fields: dict[str, Any] = {}
        keys = config.key_columns if config.mode != "append" else ()
        try:
            if record.value is not None:
                fields = decode_value(record.topic, record.value)
                if not isinstance(fields, dict):
                    raise ValueError(f"value is a JSON {type(fields).__name__}, expected an object")
                fields = flatten(fields, config.fields.flatten) if config.fields.flatten else fields
            if any(fields.get(k) is None for k in keys) and record.key is not None:
                key = decode_key(record.topic, record.key)
                key = key if isinstance(key, dict) else {keys[0]: key} if len(keys) == 1 else {}
                fields.update({k: key[k] for k in keys if fields.get(k) is None and key.get(k) is not None})
        except ValueError as exc:
            raise MappingError(record.topic, record.partition, record.offset, str(exc)) from exc
        rules, metadata, declared = config.fields, {column for _, column in config.metadata_columns}, \
            self._declared(config, record)
        wanted = {name: value for name, value in fields.items() if (value is not None or name in declared)
                  and rules.takes(name) and name not in metadata}
        missing = [k for k in keys if wanted.get(k) is None]
        if missing:
            raise MappingError(record.topic, record.partition, record.offset, f"cannot create table "
                               f"{config.qualified!r}: no value for key column(s) {', '.join(missing)}")
        return new_columns(wanted, dict(rules.rename), keys, declared)

    def _declared(self, config: TableConfig, record: Record) -> dict[str, tuple[str, str]]:
        """The column types the value's writer declared in its registry schema, by field;
        none for JSON or flattened values (their fields are typed by value)."""
        decode_value = self._decoders[0]
        if not isinstance(decode_value, RegistryDecoder) or record.value is None or config.fields.flatten:
            return {}
        return decode_value.declared_types(record.topic, record.value)

    def close(self) -> None:
        self._db.close()


def _check_names(record: Record, columns: list[NewColumn]) -> None:
    for column in columns:
        problem = identifier_problem(column.spec.name)
        if problem is not None:
            raise MappingError(record.topic, record.partition, record.offset,
                               f"field {column.spec.source!r} cannot become a column: {problem}")


class RoutedMapper:
    """Record -> payload, by the mapper of the record's table."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def __call__(self, record: Record) -> Op:
        return self.catalog.mapper(record.topic)(record)
