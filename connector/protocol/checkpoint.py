"""A checkpoint in flight, as a state machine, and the trigger policy. Pure: time is
passed in; no threads, no Kafka, no database.

A checkpoint `C` completes in these steps (DESIGN.md):

1. snapshot_state(C): take ID `C` from the database sequence, freeze the buffer into
   snapshot `C`, start a fresh buffer.                                      -> SEALED
2. Persist `C` in the state backend: on a thread of its own, beside step 3's writes,
   and durable before step 3's COMMIT (the store waits for it there).        -> DURABLE
3. notify_checkpoint_complete(C): commit `C` in one database transaction; the store
   answers                              -> COMMITTED | ALREADY_COMMITTED (a no-op) | FENCED
4. Unless fenced: commit the same offsets to Kafka (asynchronous, idempotent).
   If fenced: drop `C` and re-read the affected partitions from the database offsets.
5. Discard `C` from the state backend.                                      -> done

A step that raises leaves `C` FAILED with the error; the retry resumes it at step 2 if it
never became durable, else at step 3 (a re-commit is a no-op).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from connector.models import Commit, CommitOutcome, Snapshot, TopicPartition


class Store(Protocol):
    def next_checkpoint_id(self) -> int: ...
    # `durable()` returns once the snapshot is durable (or raises why it is not): the store
    # calls it before its COMMIT.
    def commit(self, snapshot: Snapshot[Any], durable: Callable[[], None]) -> Commit: ...
    def next_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]: ...


class StateBackend(Protocol):
    def save(self, snapshot: Snapshot[Any]) -> None: ...
    def pending(self) -> Iterable[Snapshot[Any]]: ...  # oldest first, loaded one at a time
    def discard(self, checkpoint_id: int) -> None: ...


class OffsetSink(Protocol):
    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None: ...
    def seek(self, offsets: Mapping[TopicPartition, int]) -> list[TopicPartition]: ...  # those it could not move


class Worker(Protocol):
    """Runs work beside the caller: one at a time, `join` before the next `start`."""

    def start(self, work: Callable[[], None], name: str) -> None: ...
    def busy(self) -> bool: ...
    def join(self) -> None: ...


class InlineWorker:
    """No overlap: the work runs at once, on the caller's thread."""

    def start(self, work: Callable[[], None], name: str) -> None:
        work()

    def busy(self) -> bool:
        return False

    def join(self) -> None:
        pass


@dataclass(frozen=True)
class CheckpointPolicy:
    """When the open checkpoint must be taken (I5, I6), and when a backlog's last records
    need not wait for the interval."""

    interval_ms: int
    max_records: int
    max_bytes: int

    def due(self, now_ms: float, opened_ms: float, records: int, nbytes: int,
            backlog_drained: bool = False) -> str | None:
        """The trigger that fires, or None. An empty buffer never triggers.
        `backlog_drained`: the checkpoint before this one was taken because its buffer
        filled, and the consumer has since read every partition to its end. The rest of
        the backlog is then taken at once ("caught-up"), not an interval later; a steady
        stream that never fills the buffer keeps the interval's cadence."""
        if records == 0:
            return None
        if records >= self.max_records:
            return "records"
        if nbytes >= self.max_bytes:
            return "bytes"
        if backlog_drained:
            return "caught-up"
        if self.interval_left_ms(now_ms, opened_ms) == 0:
            return "interval"
        return None

    def full(self, records: int, nbytes: int) -> bool:
        return records >= self.max_records or nbytes >= self.max_bytes

    def interval_left_ms(self, now_ms: float, opened_ms: float) -> float:
        """How long until the interval trigger fires for a buffer opened at `opened_ms` (0: it is due)."""
        return max(0.0, opened_ms + self.interval_ms - now_ms)


class Status(enum.Enum):
    SEALED = "sealed"  # step 1 done
    DURABLE = "durable"  # step 2 done
    COMMITTED = "committed"  # step 3 answered, in any of these three ways
    ALREADY_COMMITTED = "already-committed"
    FENCED = "fenced"
    FAILED = "failed"  # a step raised: `error` says what; the retry resumes it


ANSWERED = {CommitOutcome.COMMITTED: Status.COMMITTED, CommitOutcome.ALREADY_COMMITTED: Status.ALREADY_COMMITTED,
            CommitOutcome.FENCED: Status.FENCED}


@dataclass
class InFlight:
    """One checkpoint from sealing (step 1) to discarding (step 5). Every transition
    takes `now` (seconds, from the injected clock); the commit's duration is measured
    when step 3 returns, wherever and whenever its result is read afterwards."""

    snapshot: Snapshot[Any]
    sealed_at: float
    status: Status = Status.SEALED
    durable_at: float | None = None
    commit: Commit | None = None
    commit_s: float = 0.0  # step 3's own duration
    error: BaseException | None = field(default=None, repr=False)

    @property
    def checkpoint_id(self) -> int:
        return self.snapshot.checkpoint_id

    def made_durable(self, now: float) -> None:
        self.status, self.durable_at = Status.DURABLE, now

    def answered(self, commit: Commit, started: float, now: float) -> None:
        self.status, self.commit, self.commit_s = ANSWERED[commit.outcome], commit, now - started

    def failed(self, error: BaseException) -> None:
        self.status, self.error = Status.FAILED, error

    def resumed(self) -> BaseException | None:
        """Back to where the failed step starts again (SEALED or DURABLE); the error
        that stopped it, if any."""
        error, self.error = self.error, None
        if self.status is Status.FAILED:
            self.status = Status.SEALED if self.durable_at is None else Status.DURABLE
        return error

    @property
    def answer(self) -> Commit:
        assert self.commit is not None, f"checkpoint {self.checkpoint_id} is {self.status.value}, not answered"
        return self.commit


@dataclass(frozen=True)
class CheckpointResult:
    checkpoint_id: int
    outcome: CommitOutcome
    records: int
    commit_s: float  # step 3: the database transaction, measured when it returned
    duration_s: float  # from sealing (step 1) to discarding (step 5), retries included
    offsets: Mapping[TopicPartition, int] = field(default_factory=dict)  # next_offsets now in the database
    deadlettered: int = 0  # records of `records` that became dead letters
    tables: tuple[tuple[str, int], ...] = ()  # records written, by table
    skipped: int = 0  # records of `records` insert-ignore skipped (their key was stored)

    @classmethod
    def of(cls, inflight: InFlight, now: float) -> CheckpointResult:
        snapshot, commit = inflight.snapshot, inflight.answer
        fenced = commit.outcome is CommitOutcome.FENCED
        return cls(snapshot.checkpoint_id, commit.outcome, snapshot.size, inflight.commit_s,
                   now - inflight.sealed_at, {} if fenced else {r.tp: r.end for r in snapshot.ranges},
                   commit.deadlettered, commit.tables, commit.skipped)
