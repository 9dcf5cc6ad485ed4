"""The checkpoint coordinator: owns the operator state and drives each checkpoint
through the protocol (connector/protocol/checkpoint.py numbers the steps). Pure: the
clock is injected, and the threads that overlap a commit with reading, and step 2 with
step 3's writes, are `Worker`s handed in (connector/runtime/worker.py); without them,
every step runs inline.

Three named operations take or finish checkpoints:

- `take_overlapped(reason)`: finish the checkpoint in flight, seal the buffer, and leave
  steps 2-3 to the worker while the loop reads on into the next one;
- `checkpoint_now(reason)`: finish the one in flight, then take and complete a checkpoint
  of the buffer here;
- `finish_in_flight()`: wait for the worker and run steps 4-5 (re-raising what stopped
  steps 2-3: the checkpoint stays in flight and the next call resumes it).

So checkpoints complete strictly in ID order, at most one is in flight, and anything
else that needs the store, the backend or a settled state (recovery, assignment) finishes
the one in flight first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from connector.models import Record, Snapshot, TopicPartition
from connector.protocol.checkpoint import (
    CheckpointPolicy,
    CheckpointResult,
    InFlight,
    InlineWorker,
    OffsetSink,
    StateBackend,
    Store,
    Worker,
)
from connector.protocol.faults import NO_FAULTS, FaultHook
from connector.protocol.runs import Run
from connector.protocol.state import OperatorState
from connector.protocol.steps import CheckpointSteps

log = logging.getLogger(__name__)


class Mapper(Protocol):
    """Records to ops: one at a time, or a run's records [start, stop) at once
    (raising MappingFailed at the first it refuses)."""

    def __call__(self, record: Record) -> Any: ...
    def map_run(self, run: Run, start: int, stop: int) -> list[Any]: ...


class CheckpointCoordinator:
    """Owns the operator state; takes and completes its checkpoints."""

    def __init__(self, store: Store, backend: StateBackend, offsets: OffsetSink, mapper: Mapper,
                 policy: CheckpointPolicy, clock: Callable[[], float], faults: FaultHook = NO_FAULTS,
                 on_complete: Callable[[CheckpointResult], None] | None = None, worker: Worker | None = None,
                 saver: Worker | None = None) -> None:
        """`worker` runs steps 2-3 while the loop reads on; `saver`, step 2 beside step 3."""
        self.state = OperatorState()
        self._mapper, self._policy, self._clock = mapper, policy, clock
        self._steps = CheckpointSteps(self.state, store, backend, offsets, faults, clock, on_complete,
                                      saver or InlineWorker())
        self._worker = worker or InlineWorker()
        self._inflight: InFlight | None = None  # sealed, not yet through step 5
        self._opened_s = clock()
        self._behind = False  # the last checkpoint was taken because its buffer filled

    @property
    def refetched(self) -> set[TopicPartition]:
        """Partitions a fence sent back to the database's offsets: records polled before are stale."""
        return self._steps.refetched

    # -- the open checkpoint ------------------------------------------------------------
    def add_runs(self, runs: list[Run]) -> list[Run]:
        """Map and buffer `runs` until the buffer is full; what is left unread."""
        policy = self._policy
        return self.state.add_runs(runs, self._mapper.map_run, policy.max_records, policy.max_bytes)

    def due(self) -> str | None:
        return self._policy.due(self._clock() * 1000.0, self._opened_s * 1000.0, self._waiting(), self.state.bytes,
                                backlog_drained=self._behind and self.state.caught_up())

    def due_in_s(self) -> float | None:
        """Seconds until `due` fires by time alone; None while nothing is buffered (it never fires)."""
        if not self._waiting():
            return None
        return self._policy.interval_left_ms(self._clock() * 1000.0, self._opened_s * 1000.0) / 1000.0

    def _waiting(self) -> int:
        """What waits for the checkpoint: the records, and the partitions that only moved
        past markers (each waits for the interval like one record)."""
        return self.state.records + self.state.moved

    def full(self) -> bool:
        return self._policy.full(self.state.records, self.state.bytes)

    # -- taking and finishing checkpoints ----------------------------------------------------
    def busy(self) -> bool:
        """The commit worker is running: the store and the backend are its until it ends."""
        return self._worker.busy()

    def settled(self) -> bool:
        return self._inflight is None

    def take_overlapped(self, reason: str) -> None:
        """Finish the checkpoint in flight; seal the buffer into the next (if it holds
        anything) and leave its steps 2-3 to the worker."""
        inflight = self._seal(reason)
        if inflight is not None:
            self._worker.start(lambda: self._steps.durable_and_committed(inflight), f"commit-{inflight.checkpoint_id}")

    def checkpoint_now(self, reason: str) -> CheckpointResult | None:
        """Finish the checkpoint in flight; take and complete one of the buffer here
        (None when the buffer is empty). Called again after it raised, it resumes."""
        if self._seal(reason) is None:
            return None
        return self.finish_in_flight()

    def finish_in_flight(self) -> CheckpointResult | None:
        """Steps 2-5 of the checkpoint in flight, whatever of them is left; None if
        there is none. What stopped a step is raised, and the checkpoint stays in
        flight: the next call resumes it (from step 2 if it never became durable, else
        from step 3 — a re-commit is a no-op — or at step 4 if step 3 answered)."""
        inflight = self._inflight
        if inflight is None:
            return None
        self._worker.join()
        self._raise_failure(inflight)
        if inflight.commit is None:
            self._steps.durable_and_committed(inflight)
            self._raise_failure(inflight)
        result = self._steps.finish(inflight)
        self._inflight = None
        return result

    def recover(self) -> list[CheckpointResult]:
        """initialize_state's first half: re-commit every pending snapshot idempotently,
        oldest first."""
        self.finish_in_flight()
        results = []
        for inflight in self._steps.pending(self._remap):
            self._inflight = inflight
            result = self.finish_in_flight()
            assert result is not None
            results.append(result)
        return results

    def assign(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Own `partitions` from the database's next_offset; returns where to read."""
        self.finish_in_flight()
        return self._steps.assign(partitions)

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.state.release(tp)

    def reposition(self) -> None:
        self._steps.reposition()

    def _seal(self, reason: str) -> InFlight | None:
        self._opened_s, self._behind = self._clock(), self.full()  # a full buffer: the consumer is behind
        self.finish_in_flight()
        if self.state.empty():
            return None
        self._steps.faults.reached("before_snapshot")
        self._inflight = self._steps.seal()
        log.debug("checkpoint %d sealed (%s): %s", self._inflight.checkpoint_id, reason,
                  self._inflight.snapshot.describe())
        return self._inflight

    def _remap(self, snapshot: Snapshot[Any]) -> Snapshot[Any]:
        return Snapshot(snapshot.checkpoint_id, snapshot.ranges, snapshot.records,
                        tuple(self._mapper(record) for record in snapshot.records))

    @staticmethod
    def _raise_failure(inflight: InFlight) -> None:
        error = inflight.resumed()
        if error is not None:
            raise error
