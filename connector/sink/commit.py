"""The commit transaction (DESIGN.md, "The commit transaction"), one per checkpoint:

1. If (pipeline, C) is in the checkpoints table: ALREADY_COMMITTED.
2. Create missing offsets rows (ON CONFLICT DO NOTHING; skipped once the replica has
   locked every partition's row before), lock the snapshot's rows
   FOR UPDATE in (topic, partition) order and compare-and-set: each stored
   next_offset must equal the range's start (NULL only before a first commit).
   Any mismatch: roll back, FENCED.
3. Write the rows into each table the snapshot's topics are routed to, tables in name
   order, each first created or given the columns its records brought (SINK_AUTO_CREATE,
   SINK_AUTO_EVOLVE: sink/evolution.py): COPY (append), or COPY into a stage table and INSERT … ON CONFLICT DO
   UPDATE, plus DELETE for tombstones (upsert; the batch reduced per key first).
   Records the database refuses are isolated (connector/sink/writer.py) and, with
   ERRORS_TOLERANCE=all, inserted as dead letters with the records the mapping
   rejected; with `none` the transaction is rolled back naming the first of them.
4. Set each partition's next_offset to the range's end and insert the checkpoint row
   (one statement).
5. COMMIT.

Nothing else runs here: the small bookkeeping queries are connector/bookkeeping/repository.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from connector.bookkeeping import statements as bks
from connector.errors import RecordRejected
from connector.models import Commit, CommitOutcome, PartitionRange, Snapshot, TopicPartition
from connector.protocol.faults import NO_FAULTS, FaultHook
from connector.sink import deadletters as dl
from connector.sink.connection import DRIVER_ERRORS, Database, end_sessions_stuck_on_their_client
from connector.sink.mapping import Payload
from connector.sink.new_keys import NewKeys
from connector.sink.routed import RoutedWriter, Span
from connector.sink.sqlstate import Kind, classify, sqlstate_of
from connector.sink.table import Target

log = logging.getLogger(__name__)


def settings(timeout_ms: int, timezone: str) -> tuple[sa.ColumnElement[Any], ...]:
    """The transaction's settings, as columns to select (transaction-local, so a pooler
    passing the session on keeps none of them). A statement that hangs is aborted; so
    is the whole session if this process freezes mid-transaction (a zombie), so its row
    locks cannot stall the others. Timestamps without an offset are `timezone`'s
    (SINK_TIMEZONE; the rows' COPY text leaves them as sent)."""
    timeout = str(timeout_ms)
    return (sa.func.set_config("statement_timeout", timeout, True),
            sa.func.set_config("idle_in_transaction_session_timeout", timeout, True),
            sa.func.set_config("TimeZone", timezone, True))


def set_timeouts(conn: sa.Connection, timeout_ms: int, timezone: str = "UTC") -> None:
    """The transaction's `settings` on `conn`, in a statement of their own."""
    conn.execute(sa.select(*settings(timeout_ms, timezone)))


def spans(snapshot: Snapshot[Payload]) -> list[Span]:
    """Which topic each op comes from: a snapshot holds its partitions' ops one partition
    after another, in the order of its ranges."""
    found, start = [], 0
    for r in snapshot.ranges:
        found.append(Span(r.topic, start, start + r.records))
        start += r.records
    assert start == len(snapshot.ops), f"checkpoint {snapshot.checkpoint_id}: ranges hold {start} of {len(snapshot.ops)} ops"
    return found


class CommitTransaction:
    """Commits snapshots of one replica of one pipeline into the tables `target_for`
    names for each topic, steps 1-5."""

    def __init__(self, db: Database, pipeline: str, replica: str, target_for: Callable[[str], Target], *,
                 timeout_ms: int, tolerate_errors: bool, faults: FaultHook = NO_FAULTS, timezone: str = "UTC") -> None:
        self._db, self._pipeline, self._replica, self._target_for = db, pipeline, replica, target_for
        self._timeout_ms, self._tolerate_errors, self._faults = timeout_ms, tolerate_errors, faults
        self._new_keys: dict[str, NewKeys] = {}  # by table: whether upserts are tried as plain inserts
        self._rows_exist: set[TopicPartition] = set()  # partitions whose offsets row step 2 has locked before
        self._sql = bks.commit_statements(pipeline, settings(timeout_ms, timezone))

    def new_keys(self, target: Target) -> NewKeys:
        return self._new_keys.setdefault(target.spec.qualified, NewKeys())

    def commit(self, snapshot: Snapshot[Payload], durable: Callable[[], None]) -> Commit:
        """Steps 1-5 of the transaction; `durable()` (the state backend's step 2, run
        beside) is waited for before the COMMIT."""
        conn = self._db.connection()
        try:
            transaction = conn.begin()
        except DRIVER_ERRORS as exc:
            raise self._db.failed(exc, f"committing checkpoint {snapshot.checkpoint_id}") from exc
        try:
            commit = self._steps(conn, snapshot)
            if commit.outcome is CommitOutcome.COMMITTED:
                durable()
                self._faults.reached("after_rows_written")  # and the snapshot durable: only COMMIT is left
                transaction.commit()  # Step 5.
            else:
                transaction.rollback()
        except DRIVER_ERRORS as exc:
            _rollback_quietly(transaction)
            if classify(sqlstate_of(exc)) is Kind.TIMEOUT:
                self._end_stuck_sessions(conn)
            raise self._db.failed(exc, f"committing checkpoint {snapshot.checkpoint_id}") from exc
        except BaseException:
            _rollback_quietly(transaction)
            raise
        return commit

    def _end_stuck_sessions(self, conn: sa.Connection) -> None:
        """After a statement timed out (waiting, as a rule, for another session's locks):
        end the connector's writing sessions stuck past the timeout on a frozen client
        (connection.end_sessions_stuck_on_their_client), so the retry does not wait for
        them again. A failure here is logged: the retry follows."""
        try:
            ended = end_sessions_stuck_on_their_client(conn, self._timeout_ms)
        except DRIVER_ERRORS as exc:
            log.warning("could not end the connector's sessions stuck on a frozen client (grant pg_signal_backend "
                        "to the connector's role if replicas log in as different roles): %s", exc)
            return
        if ended:
            log.warning("ended the connector's session(s) %s: a transaction waiting on its client for more than "
                        "CHECKPOINT_TIMEOUT_MS (%d ms), a replica frozen inside its commit holding its locks",
                        ", ".join(map(str, ended)), self._timeout_ms)

    def _steps(self, conn: sa.Connection, snapshot: Snapshot[Payload]) -> Commit:
        """Steps 1-4, in as few round trips as they allow: one statement sets the
        transaction's timeouts and asks step 1, one locks (step 2), the writes, one for step 4."""
        cid, ranges = snapshot.checkpoint_id, snapshot.ranges
        # Step 1.
        if conn.execute(self._sql.begin, {"checkpoint_id": cid}).one()[-1]:
            return Commit(CommitOutcome.ALREADY_COMMITTED)
        # Step 2.
        stored = self._lock_offsets(conn, snapshot.partitions)
        stale = [r for r in ranges if stored.get(r.tp) != r.start]
        if stale:
            return Commit(self._fenced(conn, cid, stale, stored))
        self._faults.reached("after_offsets_locked")
        # Step 3.
        rows = RoutedWriter(conn, self._target_for, self.new_keys)
        counts: dict[str, Any] = rows.write(spans(snapshot), snapshot.ops)
        self._deadletter(conn, snapshot, rows)
        # Step 4.
        counts.update(records=snapshot.size, deadlettered=len(rows.rejected), tables=rows.tables)
        conn.execute(self._sql.advance, bks.advance_params(cid, self._replica, ranges, counts))
        return Commit(CommitOutcome.COMMITTED, len(rows.rejected), tuple(sorted(rows.tables.items())),
                      counts.get("skipped", 0))

    def _lock_offsets(self, conn: sa.Connection, partitions: Sequence[TopicPartition]) -> dict[Any, int | None]:
        """Step 2's locks: each partition's offsets row, locked in (topic, partition)
        order; its next_offset by partition. A partition this replica has not committed
        before may have no row yet: then the rows are first created (ON CONFLICT DO
        NOTHING, in the same order: two first commits race on a row). A row gone since
        (an operator deleted it, or the transaction that created it rolled back) is
        created and locked after the others."""
        pipeline = self._pipeline
        if not self._rows_exist.issuperset(partitions):
            conn.execute(bks.ensure_offsets(), bks.ensure_params(pipeline, partitions))
        stored = {(r.topic, r.partition): r.next_offset for r in conn.execute(self._sql.lock, {"partitions": partitions})}
        missing = [tp for tp in partitions if tp not in stored]
        if missing:
            conn.execute(bks.ensure_offsets(), bks.ensure_params(pipeline, missing))
            stored.update({(r.topic, r.partition): r.next_offset
                           for r in conn.execute(self._sql.lock, {"partitions": missing})})
        self._rows_exist.update(partitions)
        return stored

    def _deadletter(self, conn: sa.Connection, snapshot: Snapshot[Payload], rows: RoutedWriter) -> None:
        """Step 3's dead letters, or (ERRORS_TOLERANCE=none) a stop naming the first record."""
        if not rows.rejected:
            return
        if not self._tolerate_errors:
            first = min(rows.rejected)
            why = rows.rejected[first]
            raise RecordRejected(snapshot.records[first].where(), snapshot.checkpoint_id, why.error_class, why.error)
        for index, why in sorted(rows.rejected.items()):
            log.warning("checkpoint %d: record %s dead-lettered: %s: %s", snapshot.checkpoint_id,
                        snapshot.records[index].where(), why.error_class, why.error)
        letters = dl.rows(self._pipeline, snapshot.checkpoint_id, self._replica, snapshot.records, rows.rejected)
        # A record read again (an offsets reset) and refused again has one dead letter to replay: the newest.
        conn.execute(dl.supersede(self._pipeline, [(row["topic"], row["partition"], row["offset"])
                                                   for row in letters]))
        conn.execute(dl.insert(), letters)

    def _fenced(self, conn: sa.Connection, cid: int, stale: Sequence[PartitionRange],
                stored: Mapping[Any, Any]) -> CommitOutcome:
        # A concurrent re-commit of this very checkpoint may have won the lock race.
        if conn.execute(self._sql.committed, {"checkpoint_id": cid}).scalar():
            return CommitOutcome.ALREADY_COMMITTED
        detail = ", ".join(f"{r.topic}[{r.partition}] expected {r.start} found {stored.get(r.tp)}" for r in stale)
        log.warning("checkpoint %d fenced: %s", cid, detail)
        return CommitOutcome.FENCED


def _rollback_quietly(transaction: sa.RootTransaction) -> None:
    try:
        if transaction.is_active:
            transaction.rollback()
    except Exception as exc:  # the original error matters more than the failed rollback
        log.debug("rollback failed too: %s", exc)
