"""Checkpoints: when to take one, and the protocol that completes it.

Imports neither confluent_kafka nor psycopg; time is passed in. The collaborators
(store, state backend, source) are small protocols so tests hand in fakes.

A checkpoint completes in these steps (DESIGN.md):

1. snapshot_state(C): take ID `C` from the database sequence, freeze the buffer into
   snapshot `C`, start a fresh buffer.
2. Persist `C` in the state backend (durable before any database work).
3. notify_checkpoint_complete(C): commit `C` in one database transaction; the store
   answers COMMITTED, ALREADY_COMMITTED (a re-commit: a no-op) or FENCED.
4. Unless fenced: commit the same offsets to Kafka (asynchronous, idempotent).
   If fenced: drop `C` and re-read the affected partitions from the database offsets.
5. Discard `C` from the state backend.

`recover()` is initialize_state's first half: every pending snapshot is re-committed
through steps 3-5, in checkpoint-ID order.

Overlap (`checkpoint(reason, overlap=True)`): steps 2 and 3 of checkpoint C run on a
commit worker thread while the loop reads on into C+1; the loop finishes C (steps 4-5,
on its own thread) before it seals C+1, so checkpoints complete strictly in order and
at most one is in flight. Anything else that needs the store, the state backend or a
settled state (recovery, assignment, a synchronous checkpoint) settles first.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from connector.faults import NO_FAULTS, FaultHook
from connector.runs import Run, runs_of
from connector.models import Commit, CommitOutcome, Record, Snapshot, TopicPartition
from connector.state import MappingFailed, OperatorState

log = logging.getLogger(__name__)


class Store(Protocol):
    def next_checkpoint_id(self) -> int: ...
    def commit(self, snapshot: Snapshot) -> Commit: ...
    def next_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]: ...


class StateBackend(Protocol):
    def save(self, snapshot: Snapshot) -> None: ...
    def pending(self) -> Iterable[Snapshot]: ...  # oldest first, loaded one at a time
    def discard(self, checkpoint_id: int) -> None: ...


class OffsetSink(Protocol):
    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None: ...
    def seek(self, offsets: Mapping[TopicPartition, int]) -> list[TopicPartition]: ...  # those it could not move


@dataclass(frozen=True)
class CheckpointPolicy:
    """When the open checkpoint must be taken (I5, I6)."""

    interval_ms: int
    max_records: int
    max_bytes: int

    def due(self, now_ms: float, opened_ms: float, records: int, nbytes: int) -> str | None:
        """The trigger that fires, or None. An empty buffer never triggers."""
        if records == 0:
            return None
        if records >= self.max_records:
            return "records"
        if nbytes >= self.max_bytes:
            return "bytes"
        if now_ms - opened_ms >= self.interval_ms:
            return "interval"
        return None


@dataclass(frozen=True)
class CheckpointResult:
    checkpoint_id: int
    outcome: CommitOutcome
    records: int
    elapsed_ms: float  # steps 3-5
    commit_ms: float = 0.0  # step 3: the database transaction
    offsets: Mapping[TopicPartition, int] = field(default_factory=dict)  # next_offsets now in the database
    deadlettered: int = 0  # records of `records` that became dead letters


class CheckpointCoordinator:
    """Owns the operator state and drives each checkpoint through the protocol."""

    def __init__(
        self,
        store: Store,
        backend: StateBackend,
        offsets: OffsetSink,
        mapper: Callable[[Record], Any],
        policy: CheckpointPolicy,
        faults: FaultHook = NO_FAULTS,
        clock: Callable[[], float] = time.monotonic,
        on_complete: Callable[[CheckpointResult], None] | None = None,
        fast: Callable[[bytes | None], Any] | None = None,
    ) -> None:
        self.state = OperatorState()
        self._store, self._backend, self._offsets = store, backend, offsets
        self._mapper, self._policy, self._faults, self._clock = mapper, policy, faults, clock
        self._fast = fast  # value -> op for the common record, or None: then `mapper` maps the record
        self._on_complete = on_complete  # sees every completed checkpoint: new, resumed, recovered
        self._opened_ms = self._now_ms()
        self._inflight: Snapshot | None = None  # sealed, not yet through step 5
        self._inflight_durable = False
        self._worker: threading.Thread | None = None  # steps 2-3 of the checkpoint in flight
        self._worked: tuple[Commit, float] | BaseException | None = None  # what the worker ended with
        self.refetched: set[TopicPartition] = set()  # partitions a fence sent back: records polled before are stale

    def _now_ms(self) -> float:
        return self._clock() * 1000.0

    # -- the open checkpoint ------------------------------------------------------------
    def add(self, record: Record) -> bool:
        """Map and buffer `record`; False when it is not for an owned position (stale).
        A MappingError leaves the buffer as it was."""
        before = self.state.records
        self.add_runs(runs_of([record]))
        return self.state.records > before

    def add_many(self, records: list[Record]) -> list[Run]:
        """`add` for each of `records` until the buffer is full; what is left unread."""
        return self.add_runs(runs_of(records))

    def add_runs(self, runs: list[Run]) -> list[Run]:
        """Map and buffer `runs` until the buffer is full; what is left unread."""
        policy = self._policy
        return self.state.add_runs(runs, self._map_run, policy.max_records, policy.max_bytes)

    def _map_run(self, run: Run, start: int, stop: int) -> list[Any]:
        """The ops of `run`'s records [start, stop): the fast path where it answers, the
        mapper for the rest (MappingFailed at the first record it refuses)."""
        values = run.values if start == 0 and stop == len(run.values) else run.values[start:stop]
        fast = self._fast
        ops: list[Any] = [fast(value) for value in values] if fast is not None else [None] * len(values)
        if None in ops:
            for j, op in enumerate(ops):
                if op is None:
                    try:
                        ops[j] = self._mapper(run.record(start + j))
                    except Exception as exc:
                        raise MappingFailed(exc, ops[:j]) from exc
        return ops

    def due(self) -> str | None:
        state = self.state
        # A buffer that only moved past markers waits for the interval like one record.
        return self._policy.due(self._now_ms(), self._opened_ms, state.records + state.moved, state.bytes)

    def full(self) -> bool:
        return self.state.records >= self._policy.max_records or self.state.bytes >= self._policy.max_bytes

    # -- steps 1-5 ----------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A commit worker is running: the store and the backend are its until `settle`."""
        return self._worker is not None and self._worker.is_alive()

    def settled(self) -> bool:
        return self._worker is None and self._inflight is None

    def checkpoint(self, reason: str, overlap: bool = False) -> CheckpointResult | None:
        """Take and complete a checkpoint of everything buffered (None when empty, or
        when `overlap` leaves steps 2-3 to the commit worker: `settle` finishes it).

        Whatever is in flight is settled first. Calling it again after it raised is the
        retry: a checkpoint that failed after step 1 (its records already out of the
        buffer) is finished first, from step 2 if it never became durable, else from
        step 3 (a re-commit is a no-op)."""
        self._opened_ms = self._now_ms()
        self.settle()
        if self.state.empty():
            return None
        self._faults.reached("before_snapshot")
        # Step 1 (if taking the ID fails, the buffer is untouched).
        self._inflight = self.state.snapshot(self._store.next_checkpoint_id())
        self._inflight_durable = False
        log.debug("checkpoint %d sealed (%s): %s", self._inflight.checkpoint_id, reason, self._inflight.describe())
        if not overlap:
            return self._finish_inflight()
        self._worked = None
        self._worker = threading.Thread(target=self._work, args=(self._inflight,), daemon=True,
                                        name=f"commit-{self._inflight.checkpoint_id}")
        self._worker.start()
        return None

    def settle(self) -> CheckpointResult | None:
        """Finish the checkpoint in flight, if any: wait for its worker and run steps
        4-5; re-raise what stopped the worker (the checkpoint stays in flight, and the
        next call finishes it here)."""
        if self._worker is not None:
            self._worker.join()
            self._worker, worked, self._worked = None, self._worked, None
            if isinstance(worked, BaseException):
                raise worked
            assert worked is not None and self._inflight is not None
            snapshot, self._inflight = self._inflight, None
            return self._after_commit(snapshot, *worked)
        if self._inflight is not None:
            return self._finish_inflight()
        return None

    def _work(self, snapshot: Snapshot) -> None:
        try:
            self._persist(snapshot)
            self._worked = self._commit(snapshot)
        except BaseException as exc:  # handed to the loop's thread by settle()
            self._worked = exc

    def _persist(self, snapshot: Snapshot) -> None:
        if not self._inflight_durable:
            # Step 2 (idempotent: the same ID and content may be saved twice).
            self._backend.save(snapshot)
            self._inflight_durable = True
            self._faults.reached("after_snapshot_durable")

    def _finish_inflight(self) -> CheckpointResult:
        snapshot = self._inflight
        assert snapshot is not None
        self._persist(snapshot)
        result = self.complete(snapshot)
        self._inflight = None
        return result

    def complete(self, snapshot: Snapshot) -> CheckpointResult:
        """notify_checkpoint_complete: steps 3-5 for a durable snapshot."""
        return self._after_commit(snapshot, *self._commit(snapshot))

    def _commit(self, snapshot: Snapshot) -> tuple[Commit, float]:
        """Step 3; its outcome and the moment it started."""
        started = time.monotonic()
        return self._store.commit(snapshot), started

    def _after_commit(self, snapshot: Snapshot, commit: Commit, started: float) -> CheckpointResult:
        """Steps 4-5, once step 3 answered."""
        outcome, deadlettered = commit
        commit_ms = (time.monotonic() - started) * 1000.0
        # Step 4.
        if outcome is CommitOutcome.FENCED:
            self._refetch(snapshot)
        else:
            self._faults.reached("after_db_commit")
            # Partitions lost while the commit ran are another replica's to commit to Kafka.
            self._offsets.commit_offsets({r.tp: r.end for r in snapshot.ranges if self.state.owns(r.tp)})
            self._faults.reached("after_kafka_commit")
        # Step 5.
        self._backend.discard(snapshot.checkpoint_id)
        self._faults.reached("after_discard")
        elapsed = (time.monotonic() - started) * 1000.0
        log_at = logging.WARNING if outcome is CommitOutcome.FENCED else logging.INFO
        log.log(log_at, "checkpoint %d %s: %d records, partitions %s, %.1f ms",
                snapshot.checkpoint_id, outcome.value, snapshot.size, snapshot.describe(), elapsed)
        offsets = {} if outcome is CommitOutcome.FENCED else {r.tp: r.end for r in snapshot.ranges}
        result = CheckpointResult(snapshot.checkpoint_id, outcome, snapshot.size, elapsed, commit_ms, offsets,
                                  deadlettered)
        if self._on_complete is not None:
            self._on_complete(result)
        return result

    def recover(self) -> list[CheckpointResult]:
        """Re-commit every pending snapshot idempotently, oldest first, one in memory at
        a time (the backend loads them as they are asked for)."""
        self.settle()
        results = []
        for pending in self._backend.pending():
            log.info("re-committing pending checkpoint %d (%d records)", pending.checkpoint_id, pending.size)
            ops = tuple(self._mapper(record) for record in pending.records)
            snapshot = Snapshot(pending.checkpoint_id, pending.ranges, pending.records, ops)
            results.append(self.complete(snapshot))
        return results

    # -- assignment (initialize_state's second half) -------------------------------------
    def assign(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Own `partitions` from the database's next_offset; returns where to read."""
        self.settle()
        return self._assign(partitions)

    def _assign(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        offsets = self._store.next_offsets(partitions)
        for tp, next_offset in offsets.items():
            self.state.assign(tp, next_offset)
        return offsets

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.state.release(tp)

    def _refetch(self, snapshot: Snapshot) -> None:
        """After FENCED: the snapshot is dropped; owned partitions are read again from
        the database's offsets (a rebalance usually takes them away soon after), and one
        with no offsets row yet from the first offset of its fenced range (I11): reading
        on from where the consumer stands would skip the fenced records for good."""
        owned = [tp for tp in snapshot.partitions if self.state.owns(tp)]
        stored = self._store.next_offsets(owned)
        firsts = _first_offsets(snapshot, {tp for tp, offset in stored.items() if offset is None})
        targets: dict[TopicPartition, int] = {}
        for tp, next_offset in stored.items():
            read_from = firsts.get(tp) if next_offset is None else None
            self.state.assign(tp, next_offset, read_from)
            target = next_offset if next_offset is not None else read_from
            if target is not None:
                targets[tp] = target
        for tp in self._offsets.seek(targets):
            self.state.unpositioned(tp)
        self.refetched.update(owned)

    def reposition(self) -> None:
        """Seek again the partitions whose seek did not take; until one takes, nothing
        read of them is buffered."""
        waiting = self.state.waiting_for_position
        if not waiting:
            return
        targets = {tp: position for tp in waiting if (position := self.state.position(tp)) is not None}
        failed = set(self._offsets.seek(targets))
        for tp in waiting:
            if tp not in failed:
                self.state.positioned(tp)


def _first_offsets(snapshot: Snapshot, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
    """The first record offset of each of `partitions` in `snapshot`."""
    firsts: dict[TopicPartition, int] = {}
    if not partitions:
        return firsts
    for record in snapshot.records:
        if record.tp in partitions and record.tp not in firsts:
            firsts[record.tp] = record.offset
            if len(firsts) == len(partitions):
                break
    return firsts
