"""The store: owns the database connection, every transaction and every statement run.

The commit transaction (DESIGN.md, "The commit transaction"), one per checkpoint:

1. If (pipeline, C) is in the checkpoints table: ALREADY_COMMITTED.
2. Create missing offsets rows (ON CONFLICT DO NOTHING), lock the snapshot's rows
   FOR UPDATE in (topic, partition) order and compare-and-set: each stored
   next_offset must equal the range's start (NULL only before a first commit).
   Any mismatch: roll back, FENCED.
3. Write the rows: COPY (append), or COPY into a stage table and INSERT … ON CONFLICT
   DO UPDATE, plus DELETE for tombstones (upsert; the batch reduced per key first).
   Records the database refuses are isolated (connector/sink/writer.py) and, with
   ERRORS_TOLERANCE=all, inserted as dead letters with the records the mapping
   rejected; with `none` the transaction is rolled back naming the first of them.
4. Set each partition's next_offset to the range's end; insert the checkpoint row.
5. COMMIT.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.pool import NullPool

from connector import bookkeeping as bk
from connector.checkpoint import Commit, CommitOutcome
from connector.errors import RecordRejected, SchemaError, TransientError
from connector.sink.sqlstate import convert_db_error
from connector.faults import NO_FAULTS, FaultHook
from connector.savepoints import seed_from_savepoint
from connector.config import Settings
from connector.formats import ValueDecoder, decode_json, value_decoder
from connector.sink import deadletters as dl
from connector.sink import statements as st
from connector.sink.mapping import RowMapper, tolerant
from connector.sink.writer import BatchWriter, NewKeys
from connector.sink.schema import (TableSpec, check_additive_columns, keys_equal_as_text, reflect_table,
                                   resolve_key_columns)
from connector.state import Snapshot, TopicPartition

log = logging.getLogger(__name__)

APPLICATION_NAME = "eos-connector"
REQUEST_TTL_S = 300  # an operator request older than this, still there, was abandoned by its command
PRUNE_EVERY = 300  # heartbeats (about 10 minutes) between prunings of the checkpoints table
# A checkpoint row makes a re-commit of its snapshot a no-op; a snapshot re-committed after
# its row is pruned is fenced instead (the offsets moved past its start), so pruning only
# bounds the table. The newest row of a pipeline is always kept (`status` shows it).
CHECKPOINTS_KEPT_FOR = "1 day"


# A connection whose peer is gone is noticed in about half a minute, not after the
# kernel's two hours: TCP keepalives while a reply is awaited, and a bound on data left
# unacknowledged (a commit cannot hang on a dead network; it fails and is retried).
# Each is used only where DATABASE_URL does not set it. libpq ignores them on Unix sockets.
LIVENESS = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
            "tcp_user_timeout": "30000"}


def engine_for(url: str) -> sa.Engine:
    """An engine whose connections libpq opens from `url` exactly as given (so every
    form libpq accepts works, `?host=/socket/dir` and PG* variables included). The
    client encoding is UTF-8 whatever the server's (even SQL_ASCII): records are UTF-8."""
    options = {"client_encoding": "UTF8"}
    if "connect_timeout" not in url and "PGCONNECT_TIMEOUT" not in os.environ:
        options["connect_timeout"] = "10"  # an unreachable host fails (and is retried) in 10 s
    if "application_name" not in url and "PGAPPNAME" not in os.environ:
        options["application_name"] = APPLICATION_NAME  # lets operators find its sessions
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:  # connecting reports it, with the settings' wording
        given = {}
    options.update({name: value for name, value in LIVENESS.items() if name not in given})
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url, **options),
                            poolclass=NullPool)


class PostgresStore:
    """Runs the commit transaction and the bookkeeping queries for one pipeline."""

    def __init__(self, url: str, pipeline: str, replica: str, schema: str, *, table: tuple[str | None, str],
                 mode: str = "append", key_columns: Sequence[str] | None = None,
                 additive_columns: Sequence[str] | None = None, timeout_ms: int = 60_000,
                 faults: FaultHook = NO_FAULTS, metadata_columns: Sequence[tuple[str, str]] = (),
                 start_from_savepoint: str | None = None, topics: Sequence[str] = (),
                 tolerate_errors: bool = False, decode_value: ValueDecoder = decode_json) -> None:
        self._url, self.pipeline, self.replica, self.schema = url, pipeline, replica, schema
        self._table_name, self.mode, self._timeout_ms, self._faults = table, mode, timeout_ms, faults
        self._configured_keys = tuple(key_columns or ())
        self.additive_columns = tuple(additive_columns or ())
        self.metadata_columns = tuple(metadata_columns)
        self._savepoint, self._topics = start_from_savepoint, tuple(topics)
        self.tolerate_errors, self._decode_value = tolerate_errors, decode_value
        self._conn: sa.Connection | None = None
        self.target: TableSpec | None = None
        self._target_table: sa.Table | None = None  # built once by prepare()
        self.key_columns: tuple[str, ...] = ()
        self._summed_by_database: frozenset[str] = frozenset()  # floating-point additive columns
        self._keys_by_database = False  # whether key texts that differ may be one key
        self._new_keys = NewKeys()  # whether upserts are tried as plain inserts (kept across checkpoints)
        self._heartbeats = 0

    @classmethod
    def from_settings(cls, settings: Settings, replica: str, faults: FaultHook = NO_FAULTS) -> PostgresStore:
        return cls(settings.libpq_url, settings.connector_name, replica, settings.connector_schema,
                   table=settings.table, mode=settings.sink_mode, key_columns=settings.sink_key_columns,
                   additive_columns=settings.sink_additive_columns, timeout_ms=settings.checkpoint_timeout_ms, faults=faults,
                   metadata_columns=settings.sink_metadata_columns, start_from_savepoint=settings.start_from_savepoint,
                   topics=settings.kafka_topics, tolerate_errors=settings.errors_tolerance == "all",
                   decode_value=value_decoder(settings.value_format, settings.registry_config()))

    # -- connection -----------------------------------------------------------------------
    def connection(self) -> sa.Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            try:
                conn = engine_for(self._url).connect()
            except sa.exc.DBAPIError as exc:
                raise self._failed(exc, "connecting to the database") from exc
            self._conn = conn.execution_options(schema_translate_map=bk.translate(self.schema))
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _failed(self, exc: Exception, doing: str) -> Exception:
        """The project's error for `exc`; after a transient one the connection is
        dropped, so a retry starts on a fresh one."""
        error = convert_db_error(exc, doing)
        if isinstance(error, TransientError) and self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # it is broken already; the new one matters
                log.debug("dropping a failed connection also failed", exc_info=True)
            self._conn = None
        return error

    def prepare(self) -> RowMapper:
        """Reflect the sink table once and check it fits the mode; the record mapper."""
        conn = self.connection()
        try:
            with conn.begin():
                self.target = reflect_table(conn, *self._table_name)
                if self.mode == "upsert":
                    self.key_columns = resolve_key_columns(self.target, self._configured_keys)
                    self._keys_by_database = not keys_equal_as_text(conn, self.target, self.key_columns)
            if self._savepoint is not None:
                with conn.begin():
                    seed_from_savepoint(conn, self.pipeline, self._savepoint, self._topics)
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc, "reading the sink table's definition") from exc
        self._target_table = self.target.sa_table()
        if self.mode == "upsert":
            check_additive_columns(self.target, self.key_columns, self.additive_columns)
            self._summed_by_database = frozenset(c.name for c in self.target.columns
                                                 if c.name in self.additive_columns and c.kind == "float")
        names = {c.name for c in self.target.columns}
        missing = [f"{column!r} (for the record's {field})" for field, column in self.metadata_columns
                   if column not in names]
        if missing:
            raise SchemaError(f"SINK_METADATA_COLUMNS: table {self.target.qualified!r} has no column "
                              f"{', '.join(missing)}")
        return RowMapper(self.target.columns, self.mode, self.key_columns, self.metadata_columns, self._decode_value)

    # -- small queries --------------------------------------------------------------------
    def _run(self, doing: str, statement: sa.Executable, params: Any = None) -> list[sa.Row[Any]]:
        """Run one statement in its own transaction; the rows it returns, if any."""
        conn = self.connection()
        try:
            with conn.begin():
                result = conn.execute(statement, params)
                return list(result.all()) if result.returns_rows else []
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc, doing) from exc

    def next_checkpoint_id(self) -> int:
        return int(self._run("taking a checkpoint ID", sa.select(bk.checkpoint_ids.next_value()))[0][0])

    def next_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        rows = self._run("reading offsets", st.read_offsets(self.pipeline, sorted({t for t, _ in wanted})))
        stored = {(r.topic, r.partition): r.next_offset for r in rows}
        return {tp: stored.get(tp) for tp in wanted}

    # -- the commit transaction -------------------------------------------------------------
    def commit(self, snapshot: Snapshot) -> Commit:
        conn = self.connection()
        transaction = conn.begin()
        try:
            outcome, deadlettered = self._transaction(conn, snapshot)
            if outcome is CommitOutcome.COMMITTED:
                self._faults.reached("after_rows_written")
                transaction.commit()  # Step 5.
            else:
                transaction.rollback()
        except (sa.exc.DBAPIError, psycopg.Error) as exc:  # COPY runs on the driver's own cursor
            self._rollback_quietly(transaction)
            raise self._failed(exc, f"committing checkpoint {snapshot.checkpoint_id}") from exc
        except BaseException:
            self._rollback_quietly(transaction)
            raise
        return Commit(outcome, deadlettered)

    def _transaction(self, conn: sa.Connection, snapshot: Snapshot) -> tuple[CommitOutcome, int]:
        """Steps 1-4; the outcome and how many dead letters it wrote."""
        cid, ranges = snapshot.checkpoint_id, snapshot.ranges
        self._set_timeouts(conn)
        # Step 1.
        if conn.execute(st.checkpoint_exists(self.pipeline, cid)).first() is not None:
            return CommitOutcome.ALREADY_COMMITTED, 0
        # Step 2.
        conn.execute(st.ensure_offsets(), st.ensure_params(self.pipeline, snapshot.partitions))
        stored = {(r.topic, r.partition): r.next_offset
                  for r in conn.execute(st.lock_offsets(self.pipeline, snapshot.partitions))}
        stale = [r for r in ranges if stored.get(r.tp) != r.start]
        if stale:
            return self._fenced(conn, cid, stale, stored), 0
        self._faults.reached("after_offsets_locked")
        # Step 3.
        writer = self._writer(conn)
        counts = writer.write(snapshot.ops)
        self._deadletter(conn, snapshot, writer)
        # Step 4.
        conn.execute(st.advance_offsets(self.pipeline), st.advance_params(cid, self.replica, ranges))
        counts.update(records=snapshot.size, deadlettered=len(writer.rejected))
        conn.execute(st.record_checkpoint(self.pipeline, cid, self.replica, ranges, counts))
        return CommitOutcome.COMMITTED, len(writer.rejected)

    def _set_timeouts(self, conn: sa.Connection) -> None:
        """A statement that hangs is aborted; so is the whole session if this process
        freezes mid-transaction (a zombie), so its row locks cannot stall the others.
        Timestamps without an offset are UTC (the rows' COPY text leaves them as sent)."""
        timeout = str(self._timeout_ms)
        conn.execute(sa.select(sa.func.set_config("statement_timeout", timeout, True),
                               sa.func.set_config("idle_in_transaction_session_timeout", timeout, True),
                               sa.func.set_config("TimeZone", "UTC", True)))

    def _writer(self, conn: sa.Connection) -> BatchWriter:
        return BatchWriter(conn, self._table(), self.mode, self.key_columns, self.additive_columns, self._new_keys,
                           self._summed_by_database, self._keys_by_database)

    def _deadletter(self, conn: sa.Connection, snapshot: Snapshot, writer: BatchWriter) -> None:
        """Step 3's dead letters, or (ERRORS_TOLERANCE=none) a stop naming the first record."""
        if not writer.rejected:
            return
        if not self.tolerate_errors:
            first = min(writer.rejected)
            why = writer.rejected[first]
            raise RecordRejected(snapshot.records[first].where(), snapshot.checkpoint_id, why.error_class, why.error)
        for index, why in sorted(writer.rejected.items()):
            log.warning("checkpoint %d: record %s dead-lettered: %s: %s", snapshot.checkpoint_id,
                        snapshot.records[index].where(), why.error_class, why.error)
        rows = dl.rows(self.pipeline, snapshot.checkpoint_id, self.replica, snapshot.records, writer.rejected)
        # A record read again (an offsets reset) and refused again has one dead letter to replay: the newest.
        conn.execute(dl.supersede(self.pipeline, [(row["topic"], row["partition"], row["offset"]) for row in rows]))
        conn.execute(dl.insert(), rows)

    def _fenced(self, conn: sa.Connection, cid: int, stale: Sequence[Any], stored: dict[Any, Any]) -> CommitOutcome:
        # A concurrent re-commit of this very checkpoint may have won the lock race.
        if conn.execute(st.checkpoint_exists(self.pipeline, cid)).first() is not None:
            return CommitOutcome.ALREADY_COMMITTED
        detail = ", ".join(f"{r.topic}[{r.partition}] expected {r.start} found {stored.get(r.tp)}" for r in stale)
        log.warning("checkpoint %d fenced: %s", cid, detail)
        return CommitOutcome.FENCED

    def _table(self) -> sa.Table:
        assert self._target_table is not None, "prepare() must run before commit()"
        return self._target_table

    @staticmethod
    def _rollback_quietly(transaction: sa.RootTransaction) -> None:
        try:
            if transaction.is_active:
                transaction.rollback()
        except Exception as exc:  # the original error matters more than the failed rollback
            log.debug("rollback failed too: %s", exc)

    # -- dead letters ----------------------------------------------------------------------------
    def replay_deadletters(self, mapper: RowMapper, limit: int, dry_run: bool = False) -> tuple[int, list[str]]:
        """Write up to `limit` dead letters not replayed yet into the table, in (topic,
        partition, offset) order, in one transaction: those that land are marked replayed,
        the others keep their row with the newest reason. Returns how many landed and a line
        per record still refused. `dry_run` rolls it all back."""
        conn = self.connection()
        try:
            with conn.begin() as transaction:
                self._set_timeouts(conn)
                found = conn.execute(dl.to_replay(self.pipeline, limit)).all()
                records = [dl.record_of(row) for row in found]
                writer = self._writer(conn)
                writer.write([tolerant(mapper)(record) for record in records])
                landed = [dl.key_of(row) for i, row in enumerate(found) if i not in writer.rejected]
                if landed:
                    conn.execute(dl.mark_replayed(self.pipeline, landed))
                if writer.rejected:
                    conn.execute(dl.record_error(self.pipeline), [
                        {**{f"b_{c}": v for c, v in zip(dl.KEY_COLUMNS, dl.key_of(found[i]))},
                         "b_error_class": why.error_class, "b_error": why.error} for i, why in writer.rejected.items()])
                if dry_run:
                    transaction.rollback()
        except (sa.exc.DBAPIError, psycopg.Error) as exc:
            raise self._failed(exc, "replaying dead letters") from exc
        return len(landed), [f"{records[i].where()}: {why.error_class}: {why.error}"
                             for i, why in sorted(writer.rejected.items())]

    def forward_deadletters(self, limit: int, send: Callable[[list[sa.Row[Any]]], list[tuple[Any, ...]]]) -> int:
        """Claim up to `limit` unforwarded dead letters (rows other replicas hold are
        skipped), `send` them, and mark forwarded the keys `send` returns, in one
        transaction; how many were claimed (0: nothing left)."""
        conn = self.connection()
        try:
            with conn.begin():
                rows = conn.execute(dl.unforwarded(self.pipeline, limit)).all()
                if rows:
                    acked = send(list(rows))
                    if acked:
                        conn.execute(dl.mark_forwarded(self.pipeline, acked))
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc, "forwarding dead letters") from exc
        return len(rows)

    # -- heartbeat and operator requests -------------------------------------------------------
    def heartbeat(self, acked: int | None) -> tuple[int, list[tuple[int, str]]]:
        """Refresh this replica's row in `replicas` (recording `acked`, the newest request
        it completed) and return the requests made since, oldest first. At the first
        heartbeat (`acked` None) the requests still in flight are this replica's too (a
        `savepoint create --stop` issued while it started must stop it): only those older
        than REQUEST_TTL_S count as seen (their command gave up; finished ones are deleted).
        Every PRUNE_EVERY heartbeats, checkpoint rows older than CHECKPOINTS_KEPT_FOR are
        pruned."""
        r, q = bk.replicas, bk.requests
        conn = self.connection()
        try:
            with conn.begin():
                if acked is None:
                    acked = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(q.c.id), 0)).where(
                        q.c.pipeline == self.pipeline,
                        q.c.created_at < sa.func.now() - sa.text(f"interval '{REQUEST_TTL_S} seconds'"))) or 0)
                row = {"pipeline": self.pipeline, "replica": self.replica, "acked_request": acked}
                conn.execute(pg_insert(r).values(**row).on_conflict_do_update(
                    index_elements=[r.c.pipeline, r.c.replica],
                    set_={"last_seen": sa.func.now(), "acked_request": acked}))
                pending = conn.execute(sa.select(q.c.id, q.c.kind).where(q.c.pipeline == self.pipeline, q.c.id > acked)
                                       .order_by(q.c.id)).all()
                self._heartbeats += 1
                if self._heartbeats % PRUNE_EVERY == 1:
                    conn.execute(st.prune_checkpoints(self.pipeline, CHECKPOINTS_KEPT_FOR))
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc, "refreshing the replica's heartbeat") from exc
        return acked, [(int(row.id), str(row.kind)) for row in pending]

    def leave(self) -> None:
        """A clean exit: remove this replica's heartbeat row (it no longer counts as live)."""
        r = bk.replicas
        self._run("leaving", sa.delete(r).where(r.c.pipeline == self.pipeline, r.c.replica == self.replica))

    # -- the `postgres` state backend's rows ---------------------------------------------------
    def save_snapshot(self, checkpoint_id: int, payload: bytes) -> None:
        row = {"pipeline": self.pipeline, "checkpoint_id": checkpoint_id, "replica": self.replica, "payload": payload}
        # Idempotent: a retry after a lost acknowledgement saves the same snapshot again.
        self._run("saving a snapshot", pg_insert(bk.snapshots).values(**row).on_conflict_do_nothing())

    def snapshot_ids(self) -> list[int]:
        t = bk.snapshots
        query = sa.select(t.c.checkpoint_id).where(t.c.pipeline == self.pipeline).order_by(t.c.checkpoint_id)
        return [int(r.checkpoint_id) for r in self._run("listing snapshots", query)]

    def load_snapshot(self, checkpoint_id: int) -> bytes | None:
        """A snapshot's payload; None once another replica committed and discarded it."""
        t = bk.snapshots
        query = sa.select(t.c.payload).where(t.c.pipeline == self.pipeline, t.c.checkpoint_id == checkpoint_id)
        rows = self._run("loading a snapshot", query)
        return bytes(rows[0].payload) if rows else None

    def delete_snapshot(self, checkpoint_id: int) -> None:
        t = bk.snapshots
        self._run("discarding a snapshot",
                  sa.delete(t).where(t.c.pipeline == self.pipeline, t.c.checkpoint_id == checkpoint_id))
