"""The store: the runner's one handle on the database, composed of the connection
(sink/connection.py), the sink table read at start (sink/table.py), the commit
transaction (sink/commit.py) and the bookkeeping repository
(connector/bookkeeping/repository.py). It adds no logic of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from connector.bookkeeping.positions import Offsets
from connector.bookkeeping.repository import Repository
from connector.config import Settings
from connector.formats import ValueDecoder, decode_json, value_decoder
from connector.models import Commit, Snapshot, TopicPartition
from connector.protocol.faults import NO_FAULTS, FaultHook
from connector.sink.commit import CommitTransaction
from connector.sink.connection import Database
from connector.sink.mapping import Payload, RowMapper
from connector.sink.replay import replay_deadletters
from connector.sink.table import TableConfig, Target, load_target


class StartFrom(NamedTuple):
    """START_FROM_SAVEPOINT: the savepoint, and the pipeline's topics to take from it."""

    savepoint: str
    topics: tuple[str, ...]


class PostgresStore:
    """The database side of one replica of one pipeline."""

    def __init__(self, url: str, pipeline: str, replica: str, schema: str, *, table: tuple[str | None, str],
                 mode: str = "append", key_columns: Sequence[str] | None = None,
                 additive_columns: Sequence[str] | None = None, timeout_ms: int = 60_000,
                 faults: FaultHook = NO_FAULTS, metadata_columns: Sequence[tuple[str, str]] = (),
                 tolerate_errors: bool = False, decode_value: ValueDecoder = decode_json,
                 start_from: StartFrom | None = None) -> None:
        self.db = Database(url, schema)
        self.rows = Repository(self.db, pipeline, replica)
        self.table = TableConfig(table, mode, tuple(key_columns or ()), tuple(additive_columns or ()),
                                 tuple(metadata_columns))
        self._timeout_ms, self._tolerate_errors, self._faults = timeout_ms, tolerate_errors, faults
        self._decode_value, self._start_from = decode_value, start_from
        self.target: Target | None = None
        self._transaction: CommitTransaction | None = None  # built by prepare()

    @classmethod
    def from_settings(cls, settings: Settings, replica: str, faults: FaultHook = NO_FAULTS) -> PostgresStore:
        return cls(settings.libpq_url, settings.connector_name, replica, settings.connector_schema,
                   table=settings.table, mode=settings.sink_mode, key_columns=settings.sink_key_columns,
                   additive_columns=settings.sink_additive_columns, timeout_ms=settings.checkpoint_timeout_ms,
                   faults=faults, metadata_columns=settings.sink_metadata_columns,
                   tolerate_errors=settings.errors_tolerance == "all",
                   decode_value=value_decoder(settings.value_format, settings.registry_config()),
                   start_from=StartFrom(settings.start_from_savepoint, tuple(settings.kafka_topics))
                   if settings.start_from_savepoint else None)

    @property
    def pipeline(self) -> str:
        return self.rows.pipeline

    def prepare(self) -> RowMapper:
        """Read the sink table (reads only) and check it fits the settings; the record mapper."""
        with self.db.reading("reading the sink table's definition") as conn:
            self.target = load_target(conn, self.table)
        self._transaction = CommitTransaction(self.db, self.rows.pipeline, self.rows.replica, self.target,
                                              timeout_ms=self._timeout_ms, tolerate_errors=self._tolerate_errors,
                                              faults=self._faults)
        return self.target.mapper(self.table.metadata_columns, self._decode_value)

    def start_from_savepoint(self) -> Offsets:
        """START_FROM_SAVEPOINT, a start-up step of `run` (never of `check`): a pipeline
        with no offsets yet takes the savepoint's; {} when there is none to take."""
        if self._start_from is None:
            return {}
        return self.rows.seed_from_savepoint(*self._start_from)

    def commit(self, snapshot: Snapshot[Payload]) -> Commit:
        assert self._transaction is not None, "prepare() must run before commit()"
        return self._transaction.commit(snapshot)

    def close(self) -> None:
        self.db.close()

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

    def replay_deadletters(self, mapper: RowMapper, limit: int, dry_run: bool = False) -> tuple[int, list[str]]:
        assert self.target is not None, "prepare() must run before replay_deadletters()"
        return replay_deadletters(self.db, self.rows.pipeline, self.target, mapper, limit=limit,
                                  timeout_ms=self._timeout_ms, dry_run=dry_run)
