"""The store: the runner's one handle on the database, composed of the connection
(sink/connection.py), the tables each topic is routed to (sink/catalog.py), the commit
transaction (sink/commit.py) and the bookkeeping repository
(connector/bookkeeping/repository.py). It adds no logic of its own."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Container, Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa

from connector.bookkeeping.positions import Offsets
from connector.bookkeeping.repository import Repository
from connector.config import Settings
from connector.errors import ConfigError, ConnectorError, TransientError
from connector.formats import ValueDecoder, decode_json, decode_json_key, key_decoder, value_decoder
from connector.models import Commit, Snapshot, TopicPartition
from connector.protocol.faults import NO_FAULTS, FaultHook
from connector.routing import Routes, Subscription, TableConfig
from connector.sink.catalog import FIXED_TABLES, Catalog, RoutedMapper, SchemaChanges, UnknownValues, uncounted
from connector.sink.commit import CommitTransaction
from connector.sink.connection import Database
from connector.sink.mapping import Payload
from connector.sink.replay import replay_deadletters


class StartFrom(NamedTuple):
    """START_FROM_SAVEPOINT: the savepoint, and the pipeline's topics to take from it."""

    savepoint: str
    topics: Container[str]


class PostgresStore:
    """The database side of one replica of one pipeline."""

    def __init__(self, url: str, pipeline: str, replica: str, schema: str, *, routes: Routes | TableConfig,
                 topics: Subscription | None = None, timeout_ms: int = 60_000, faults: FaultHook = NO_FAULTS,
                 tolerate_errors: bool = False, decode_value: ValueDecoder = decode_json,
                 decode_key: ValueDecoder = decode_json_key, start_from: StartFrom | None = None,
                 timezone: str = "UTC", changes: SchemaChanges = FIXED_TABLES,
                 unknown_values: UnknownValues = uncounted) -> None:
        """`routes` name each topic's table (a TableConfig: every topic into that one);
        the tables of `topics` listed by name are read at prepare(), others when met.
        `timezone` (SINK_TIMEZONE): the zone of timestamps written without an offset;
        `changes`: SINK_AUTO_CREATE and SINK_AUTO_EVOLVE; `unknown_values(table, field)`:
        the count of a field no column of the table takes (and none is made for), called
        once per value."""
        self.db = Database(url, schema)
        # The `postgres` state backend's snapshots on a connection of their own (made when
        # first used): step 2 saves one while step 3's transaction writes on `db`.
        self.rows = Repository(self.db, pipeline, replica, snapshots=Database(url, schema))
        routes = routes if isinstance(routes, Routes) else Routes.single(routes)
        self.catalog = Catalog(routes, url, schema, decode_value, zoneinfo.ZoneInfo(timezone), decode_key, changes,
                               unknown_values)
        self._topics, self._timeout_ms, self._tolerate_errors = topics or Subscription(), timeout_ms, tolerate_errors
        self._faults, self._start_from, self._timezone = faults, start_from, timezone
        self._transaction: CommitTransaction | None = None  # built by prepare()

    @classmethod
    def from_settings(cls, settings: Settings, replica: str, faults: FaultHook = NO_FAULTS,
                      unknown_values: UnknownValues = uncounted) -> PostgresStore:
        return cls(settings.libpq_url, settings.connector_name, replica, settings.connector_schema,
                   routes=settings.routes(), topics=settings.subscription, timeout_ms=settings.checkpoint_timeout_ms,
                   faults=faults, tolerate_errors=settings.errors_tolerance == "all",
                   decode_value=value_decoder(settings.value_format, settings.registry_config()),
                   decode_key=key_decoder(settings.key_format, settings.registry_config()),
                   start_from=StartFrom(settings.start_from_savepoint, settings.subscription)
                   if settings.start_from_savepoint else None, timezone=settings.sink_timezone,
                   changes=SchemaChanges(settings.sink_auto_create, settings.sink_auto_evolve),
                   unknown_values=unknown_values)

    @property
    def pipeline(self) -> str:
        return self.rows.pipeline

    def prepare(self) -> RoutedMapper:
        """Read the tables of the topics listed by name and check they fit the settings
        (reads only; others are read when their topic is met); the record mapper."""
        self._check_timezone()
        self.catalog.load(self._topics.topics)
        self._transaction = CommitTransaction(self.db, self.rows.pipeline, self.rows.replica, self.catalog.target,
                                              timeout_ms=self._timeout_ms, tolerate_errors=self._tolerate_errors,
                                              faults=self._faults, timezone=self._timezone)
        return RoutedMapper(self.catalog)

    def _check_timezone(self) -> None:
        """PostgreSQL knows SINK_TIMEZONE (its zone database may differ from Python's)."""
        try:
            with self.db.reading(f"setting TimeZone to SINK_TIMEZONE={self._timezone!r}") as conn:
                conn.execute(sa.select(sa.func.set_config("TimeZone", self._timezone, True)))
        except TransientError:
            raise
        except ConnectorError as exc:
            raise ConfigError([f"SINK_TIMEZONE={self._timezone!r}: PostgreSQL refuses it: {exc}"]) from exc

    def start_from_savepoint(self) -> Offsets:
        """START_FROM_SAVEPOINT, a start-up step of `run` (never of `check`): a pipeline
        with no offsets yet takes the savepoint's; {} when there is none to take."""
        if self._start_from is None:
            return {}
        return self.rows.seed_from_savepoint(*self._start_from)

    def commit(self, snapshot: Snapshot[Payload], durable: Callable[[], None]) -> Commit:
        assert self._transaction is not None, "prepare() must run before commit()"
        return self._transaction.commit(snapshot, durable)

    def close(self) -> None:
        self.db.close()
        self.rows.close_snapshots()
        self.catalog.close()

    # -- the repository's queries, as the protocol and the backends name them ---------------------
    def next_checkpoint_id(self) -> int:
        return self.rows.next_checkpoint_id()

    def next_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        return self.rows.next_offsets(partitions)

    def heartbeat(self, acked: int | None) -> tuple[int, list[tuple[int, str]]]:
        return self.rows.heartbeat(acked)

    def leave(self) -> None:
        self.rows.leave()

    def forward_deadletters(self, limit: int, send: Callable[[list[sa.Row[Any]]], list[tuple[Any, ...]]]) -> int:
        return self.rows.forward_deadletters(limit, send)

    def replay_deadletters(self, mapper: RoutedMapper, limit: int, dry_run: bool = False) -> tuple[int, list[str]]:
        return replay_deadletters(self.db, self.rows.pipeline, self.catalog.target, mapper, limit=limit,
                                  timeout_ms=self._timeout_ms, timezone=self._timezone, dry_run=dry_run)
