"""In-memory collaborators for the pure protocol's unit tests (never for integration)."""

from __future__ import annotations

import threading

from connector.models import Commit, CommitOutcome, Record, Snapshot
from connector.protocol.coordinator import CheckpointCoordinator
from connector.protocol.runs import Run, runs_of
from connector.sink.dispatch import RunMapping


class FakeStore:
    """Models the commit transaction's contract: idempotent by checkpoint ID,
    compare-and-set on next_offset, all-or-nothing."""

    def __init__(self) -> None:
        self.offsets: dict = {}
        self.committed: dict[int, Snapshot] = {}
        self.rows: list = []
        self._ids = 0

    def next_checkpoint_id(self) -> int:
        self._ids += 1
        return self._ids

    def commit(self, snapshot: Snapshot, durable=lambda: None) -> Commit:
        if snapshot.checkpoint_id in self.committed:
            return Commit(CommitOutcome.ALREADY_COMMITTED)
        if any(self.offsets.get(r.tp) != r.start for r in snapshot.ranges):
            return Commit(CommitOutcome.FENCED)
        durable()  # the state backend's step 2, before the commit
        for r in snapshot.ranges:
            self.offsets[r.tp] = r.end
        self.rows.extend(snapshot.ops)
        self.committed[snapshot.checkpoint_id] = snapshot
        return Commit(CommitOutcome.COMMITTED)

    def next_offsets(self, partitions):
        return {tp: self.offsets.get(tp) for tp in partitions}


class FakeBackend:
    def __init__(self) -> None:
        self.saved: dict[int, Snapshot] = {}
        self.discarded: list[int] = []

    def save(self, snapshot: Snapshot) -> None:
        self.saved[snapshot.checkpoint_id] = Snapshot(snapshot.checkpoint_id, snapshot.ranges,
                                                      snapshot.records, ())

    def pending(self) -> list[Snapshot]:
        return sorted(self.saved.values(), key=lambda s: s.checkpoint_id)

    def discard(self, checkpoint_id: int) -> None:
        self.saved.pop(checkpoint_id, None)
        self.discarded.append(checkpoint_id)


class FakeOffsets:
    def __init__(self) -> None:
        self.commits: list[dict] = []
        self.seeks: list[dict] = []
        self.failing: set = set()  # partitions whose seek fails

    def commit_offsets(self, offsets) -> None:
        self.commits.append(dict(offsets))

    def seek(self, offsets) -> list:
        self.seeks.append(dict(offsets))
        return [tp for tp in offsets if tp in self.failing]


class InstantStop(threading.Event):
    """A stop event whose timed waits (a retry's backoff) return at once, each recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rec(offset: int, partition: int = 0, topic: str = "t", value: bytes = b"{}") -> Record:
    return Record(topic, partition, offset, None, value)


def offset_of(record: Record) -> int:
    return record.offset


identity = RunMapping(offset_of)  # a mapper whose op is the record's offset: committed rows are easy to compare


def add(coord: CheckpointCoordinator, record: Record) -> bool:
    """Map and buffer `record`; False when it is not for an owned position (stale)."""
    before = coord.state.records
    coord.add_runs(runs_of([record]))
    return coord.state.records > before


def add_many(coord: CheckpointCoordinator, records: list[Record]) -> list[Run]:
    """Buffer `records` until the buffer is full; the runs left unread."""
    return coord.add_runs(runs_of(records))
