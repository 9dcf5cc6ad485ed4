"""The pipeline's tables: for each topic, the table its route names (connector/routing.py),
read and checked once, the first time the topic is met, and the mapper of its records.

Tables are read on a connection of the catalog's own, opened for the read and closed
after it: the loop meets a new topic (KAFKA_TOPICS_REGEX) while the commit worker may be
inside a transaction on the pipeline's connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, tzinfo

from connector.errors import SchemaError
from connector.formats import ValueDecoder, decode_json, decode_json_key
from connector.models import Record
from connector.routing import Routes, TableConfig
from connector.sink.connection import Database
from connector.sink.mapping import Op, RowMapper
from connector.sink.table import Target, load_target

log = logging.getLogger(__name__)


class Catalog:
    """Topic -> table, read lazily and kept; thread-safe."""

    def __init__(self, routes: Routes, url: str, schema: str, decode_value: ValueDecoder = decode_json,
                 zone: tzinfo = UTC, decode_key: ValueDecoder = decode_json_key) -> None:
        self.routes, self._decode_value, self._zone, self._decode_key = routes, decode_value, zone, decode_key
        self._db = Database(url, schema)
        self._lock = threading.Lock()
        self._tables: dict[tuple[str | None, str], tuple[Target, RowMapper]] = {}
        self._by_topic: dict[str, tuple[Target, RowMapper]] = {}

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

    def mapper(self, topic: str) -> RowMapper:
        return (self._by_topic.get(topic) or self._entry(topic))[1]

    def _entry(self, topic: str) -> tuple[Target, RowMapper]:
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

    def _table(self, config: TableConfig) -> tuple[Target, RowMapper]:
        entry = self._tables.get(config.name)
        if entry is None:
            entry = self._tables[config.name] = self._read(config)
        return entry

    def _read(self, config: TableConfig) -> tuple[Target, RowMapper]:
        try:
            with self._db.reading(f"reading the definition of table {config.qualified!r}") as conn:
                target = load_target(conn, config)
        finally:
            self._db.close()
        return target, target.mapper(config.metadata_columns, self._decode_value, self._zone, config.fields.flatten,
                                     self._decode_key)

    def close(self) -> None:
        self._db.close()


class RoutedMapper:
    """Record -> payload, by the mapper of the record's table."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def __call__(self, record: Record) -> Op:
        return self.catalog.mapper(record.topic)(record)
