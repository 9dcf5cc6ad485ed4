"""Steps 2-5 of a checkpoint, recovery and assignment (initialize_state), as the
coordinator drives them. Pure: time is passed in (connector/protocol/checkpoint.py has
the numbered steps and the states of a checkpoint in flight)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from connector.models import CommitOutcome, Snapshot, TopicPartition
from connector.protocol.checkpoint import CheckpointResult, InFlight, OffsetSink, StateBackend, Store, Worker
from connector.protocol.faults import FaultHook
from connector.protocol.state import OperatorState

log = logging.getLogger(__name__)


class CheckpointSteps:
    """Runs the steps on the store, the state backend and the source's offsets."""

    def __init__(self, state: OperatorState, store: Store, backend: StateBackend, offsets: OffsetSink,
                 faults: FaultHook, clock: Callable[[], float],
                 on_complete: Callable[[CheckpointResult], None] | None, saver: Worker) -> None:
        self._state, self._store, self._backend, self._offsets = state, store, backend, offsets
        self.faults, self._clock, self._on_complete, self._saver = faults, clock, on_complete, saver
        self.refetched: set[TopicPartition] = set()  # partitions a fence sent back: records polled before are stale

    def seal(self) -> InFlight:
        """Step 1 (if taking the ID fails, the buffer is untouched)."""
        checkpoint_id = self._store.next_checkpoint_id()
        return InFlight(self._state.snapshot(checkpoint_id), self._clock())

    def durable_and_committed(self, inflight: InFlight) -> None:
        """Steps 2 (unless durable already) and 3, side by side: step 3 writes while
        step 2 saves, and commits once the snapshot is durable. A step that raises leaves
        `inflight` FAILED with the error (the commit worker runs this); either way step 2
        has ended when this returns."""
        saving = _Saving(self._saver, self._backend.save, inflight, self._clock, self.faults)
        try:
            started = self._clock()
            commit = self._store.commit(inflight.snapshot, saving.durable)  # Step 3.
            saving.durable()  # fenced or committed before: durable all the same, before step 5 discards it
            inflight.answered(commit, started, self._clock())
        except BaseException as exc:  # handed to the loop's thread by the coordinator
            saving.ended()
            inflight.failed(exc)

    def finish(self, inflight: InFlight) -> CheckpointResult:
        """Steps 4-5, once step 3 answered."""
        snapshot, outcome = inflight.snapshot, inflight.answer.outcome
        # Step 4.
        if outcome is CommitOutcome.FENCED:
            self._refetch(snapshot)
        else:
            self.faults.reached("after_db_commit")
            # Partitions lost while the commit ran are another replica's to commit to Kafka.
            self._offsets.commit_offsets({r.tp: r.end for r in snapshot.ranges if self._state.owns(r.tp)})
            self.faults.reached("after_kafka_commit")
        # Step 5.
        self._backend.discard(snapshot.checkpoint_id)
        self.faults.reached("after_discard")
        result = CheckpointResult.of(inflight, self._clock())
        log.log(logging.WARNING if outcome is CommitOutcome.FENCED else logging.INFO,
                "checkpoint %d %s: %d records, partitions %s, %.1f ms", snapshot.checkpoint_id, outcome.value,
                snapshot.size, snapshot.describe(), result.commit_s * 1000.0)
        if self._on_complete is not None:
            self._on_complete(result)
        return result

    def pending(self, remap: Callable[[Snapshot[Any]], Snapshot[Any]]) -> Iterable[InFlight]:
        """Every snapshot left in the state backend, oldest first and one in memory at a
        time, as durable checkpoints in flight (their ops mapped again by `remap`)."""
        for snapshot in self._backend.pending():
            log.info("re-committing pending checkpoint %d (%d records)", snapshot.checkpoint_id, snapshot.size)
            now = self._clock()
            inflight = InFlight(remap(snapshot), now)
            inflight.made_durable(now)
            yield inflight

    # -- assignment (initialize_state's second half) and re-reading ------------------------------
    def assign(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        offsets = self._store.next_offsets(partitions)
        for tp, next_offset in offsets.items():
            self._state.assign(tp, next_offset)
        return offsets

    def _refetch(self, snapshot: Snapshot[Any]) -> None:
        """After FENCED: the snapshot is dropped; owned partitions are read again from
        the database's offsets (a rebalance usually takes them away soon after), and one
        with no offsets row yet from the first offset of its fenced range (I11): reading
        on from where the consumer stands would skip the fenced records for good."""
        owned = [tp for tp in snapshot.partitions if self._state.owns(tp)]
        stored = self._store.next_offsets(owned)
        firsts = _first_offsets(snapshot, {tp for tp, offset in stored.items() if offset is None})
        targets: dict[TopicPartition, int] = {}
        for tp, next_offset in stored.items():
            read_from = firsts.get(tp) if next_offset is None else None
            self._state.assign(tp, next_offset, read_from)
            target = next_offset if next_offset is not None else read_from
            if target is not None:
                targets[tp] = target
        for tp in self._offsets.seek(targets):
            self._state.unpositioned(tp)
        self.refetched.update(owned)

    def reposition(self) -> None:
        """Seek again the partitions whose seek did not take; until one takes, nothing
        read of them is buffered."""
        waiting = self._state.waiting_for_position
        if not waiting:
            return
        targets = {tp: position for tp in waiting if (position := self._state.position(tp)) is not None}
        failed = set(self._offsets.seek(targets))
        for tp in waiting:
            if tp not in failed:
                self._state.positioned(tp)


def _first_offsets(snapshot: Snapshot[Any], partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
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


class _Saving:
    """Step 2 of `inflight` (idempotent: the same ID and content may be saved twice),
    begun on `saver` now, unless the snapshot is durable already."""

    def __init__(self, saver: Worker, save: Callable[[Snapshot[Any]], None], inflight: InFlight,
                 clock: Callable[[], float], faults: FaultHook) -> None:
        self._saver, self._inflight, self._clock, self._faults = saver, inflight, clock, faults
        self._error: BaseException | None = None
        if inflight.durable_at is None:
            saver.start(lambda: self._save(save), f"snapshot-{inflight.checkpoint_id}")

    def _save(self, save: Callable[[Snapshot[Any]], None]) -> None:
        try:
            save(self._inflight.snapshot)
            self._faults.reached("after_snapshot_durable")  # on the saver's thread: step 3 may be writing
        except BaseException as exc:  # raised where step 3 waits for it
            self._error = exc

    def durable(self) -> None:
        """Once the snapshot is durable: `inflight` is DURABLE; else what the save raised."""
        self._saver.join()
        if self._error is not None:
            raise self._error
        if self._inflight.durable_at is None:
            self._inflight.made_durable(self._clock())

    def ended(self) -> None:
        """Once the save has ended (step 3 failed): `inflight` is DURABLE if it saved."""
        try:
            self.durable()
        except BaseException as exc:  # step 3's failure is the one to report
            log.debug("checkpoint %d: saving failed too: %s", self._inflight.checkpoint_id, exc)
