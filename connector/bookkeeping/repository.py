"""The small queries a replica runs on the bookkeeping schema, each in its own
transaction: checkpoint IDs, stored offsets, the `postgres` state backend's snapshot
rows, the heartbeat that brings operator requests, dead letters to forward, and the
start-up seeding from a savepoint. The commit transaction is `sink/commit.py`'s."""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from connector import bookkeeping as bk
from connector.bookkeeping import statements as bks
from connector.bookkeeping.positions import Offsets, seed_from_savepoint
from connector.models import TopicPartition
from connector.sink import deadletters as dl
from connector.sink.connection import Database

log = logging.getLogger(__name__)
REQUEST_TTL_S = 300  # an operator request older than this, still there, was abandoned by its command
PRUNE_EVERY = 300  # heartbeats (about 10 minutes) between prunings of the checkpoints table
# A checkpoint row makes a re-commit of its snapshot a no-op; a snapshot re-committed after
# its row is pruned is fenced instead (the offsets moved past its start), so pruning only
# bounds the table. The newest row of a pipeline is always kept (`status` shows it).
CHECKPOINTS_KEPT_FOR = "1 day"


class Repository:
    """The bookkeeping rows of one replica (`replica`) of one pipeline (`pipeline`)."""

    def __init__(self, db: Database, pipeline: str, replica: str, snapshots: Database | None = None) -> None:
        """`snapshots`: the connection of the `postgres` state backend's rows, if not `db`'s
        (step 2 saves a snapshot while step 3's transaction writes)."""
        self._db, self.pipeline, self.replica = db, pipeline, replica
        self._snapshots = snapshots or db
        self._heartbeats = 0

    def close_snapshots(self) -> None:
        if self._snapshots is not self._db:
            self._snapshots.close()

    def next_checkpoint_id(self) -> int:
        return int(self._db.run("taking a checkpoint ID", sa.select(bk.checkpoint_ids.next_value()))[0][0])

    def next_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        rows = self._db.run("reading offsets", bks.read_offsets(self.pipeline, sorted({t for t, _ in wanted})))
        stored = {(r.topic, r.partition): r.next_offset for r in rows}
        return {tp: stored.get(tp) for tp in wanted}

    def seed_from_savepoint(self, name: str, topics: Container[str]) -> Offsets:
        """START_FROM_SAVEPOINT, a start-up step of `run`: see positions.seed_from_savepoint."""
        with self._db.transaction(f"starting from savepoint {name!r}") as conn:
            return seed_from_savepoint(conn, self.pipeline, name, topics)

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
        with self._db.transaction("refreshing the replica's heartbeat") as conn:
            if acked is None:
                acked = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(q.c.id), 0)).where(
                    q.c.pipeline == self.pipeline,
                    q.c.created_at < sa.func.now() - sa.text(f"interval '{REQUEST_TTL_S} seconds'"))) or 0)
            row = {"pipeline": self.pipeline, "replica": self.replica, "acked_request": acked}
            conn.execute(pg_insert(r).values(**row).on_conflict_do_update(
                index_elements=[r.c.pipeline, r.c.replica], set_={"last_seen": sa.func.now(), "acked_request": acked}))
            pending = conn.execute(sa.select(q.c.id, q.c.kind).where(q.c.pipeline == self.pipeline, q.c.id > acked)
                                   .order_by(q.c.id)).all()
            self._heartbeats += 1
            if self._heartbeats % PRUNE_EVERY == 1:
                conn.execute(bks.prune_checkpoints(self.pipeline, CHECKPOINTS_KEPT_FOR))
        return acked, [(int(row.id), str(row.kind)) for row in pending]

    def leave(self) -> None:
        """A clean exit: remove this replica's heartbeat row (it no longer counts as live)."""
        r = bk.replicas
        self._db.run("leaving", sa.delete(r).where(r.c.pipeline == self.pipeline, r.c.replica == self.replica))

    # -- the `postgres` state backend's rows ---------------------------------------------------
    def save_snapshot(self, checkpoint_id: int, payload: bytes) -> None:
        row = {"pipeline": self.pipeline, "checkpoint_id": checkpoint_id, "replica": self.replica, "payload": payload}
        # Idempotent: a retry after a lost acknowledgement saves the same snapshot again.
        self._snapshots.run("saving a snapshot", pg_insert(bk.snapshots).values(**row).on_conflict_do_nothing())

    def snapshot_ids(self) -> list[int]:
        t = bk.snapshots
        query = sa.select(t.c.checkpoint_id).where(t.c.pipeline == self.pipeline).order_by(t.c.checkpoint_id)
        return [int(r.checkpoint_id) for r in self._snapshots.run("listing snapshots", query)]

    def load_snapshot(self, checkpoint_id: int) -> bytes | None:
        """A snapshot's payload; None once another replica committed and discarded it."""
        t = bk.snapshots
        query = sa.select(t.c.payload).where(t.c.pipeline == self.pipeline, t.c.checkpoint_id == checkpoint_id)
        rows = self._snapshots.run("loading a snapshot", query)
        return bytes(rows[0].payload) if rows else None

    def delete_snapshot(self, checkpoint_id: int) -> None:
        t = bk.snapshots
        self._snapshots.run("discarding a snapshot",
                            sa.delete(t).where(t.c.pipeline == self.pipeline, t.c.checkpoint_id == checkpoint_id))

    # -- dead letters to forward -----------------------------------------------------------------
    def forward_deadletters(self, limit: int, send: Callable[[list[sa.Row[Any]]], list[tuple[Any, ...]]]) -> int:
        """Claim up to `limit` unforwarded dead letters (rows other replicas hold are
        skipped), `send` them, and mark forwarded the keys `send` returns, in one
        transaction; how many were claimed (0: nothing left)."""
        with self._db.transaction("forwarding dead letters") as conn:
            rows = conn.execute(dl.unforwarded(self.pipeline, limit)).all()
            if rows:
                acked = send(list(rows))
                if acked:
                    conn.execute(dl.mark_forwarded(self.pipeline, acked))
        return len(rows)
