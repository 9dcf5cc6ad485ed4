"""The runner: owns a replica's lifecycle — start, the consumer loop, rebalances and
shutdown — and nothing else.

The loop is flat: poll -> buffer -> maybe checkpoint. A checkpoint the loop takes
(interval, full) overlaps: its database commit runs on the commit worker while the loop
reads on, and is finished before the next one is sealed (connector/protocol/coordinator.py);
the replica then holds at most two checkpoints' worth of records. Rebalances arrive as the
named methods `on_assigned`, `on_revoked` and `on_lost` (called from inside poll):

- assigned: initialize_state — re-commit every pending snapshot, then resume each
  partition from the database's next_offset (I4);
- revoked: checkpoint and commit *before* the partitions are released (I7);
- lost: drop their buffers without a commit; another replica owns them now (I7).

SIGTERM (`request_stop`) ends the loop: a final checkpoint, leave the group, exit 0
within SHUTDOWN_TIMEOUT_MS (I8).

Every database step is retried on a transient failure (RESTART_STRATEGY): the
checkpoint being committed stays in flight (the coordinator resumes it), and no record
is read while it waits. A wait in the loop ends at a stop request (then the final
checkpoint resumes it); waits inside rebalance callbacks and the final checkpoint are
bounded by the strategy and by SHUTDOWN_TIMEOUT_MS.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from connector.errors import CheckpointTimeout, MappingError, TransientError
from connector.models import TopicPartition
from connector.observability import Health, Metrics
from connector.protocol.checkpoint import CheckpointPolicy, CheckpointResult, StateBackend, Store, Worker
from connector.protocol.coordinator import CheckpointCoordinator
from connector.protocol.faults import NO_FAULTS, FaultHook
from connector.protocol.runs import Run
from connector.runtime.gauges import Gauges
from connector.runtime.heartbeat import Heartbeat
from connector.runtime.lifecycle import Lifecycle
from connector.runtime.retry import DEFAULT_RESTART, Interrupted, RestartStrategy, Retries
from connector.runtime.tuning import Collector
from connector.runtime.worker import CommitWorker
from connector.sink.catalog import RoutedMapper
from connector.sink.dispatch import run_mapping

if TYPE_CHECKING:
    from connector.kafka.deadletters import Forwarder
    from connector.kafka.source import RebalanceListener

log = logging.getLogger(__name__)
POLL_TIMEOUT_S = 0.1
MAX_POLL_BATCH = 10_000


class Source(Protocol):
    def start(self, listener: RebalanceListener) -> None: ...
    def poll(self, max_records: int, timeout_s: float) -> list[Run]: ...
    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None: ...
    def seek(self, offsets: Mapping[TopicPartition, int]) -> list[TopicPartition]: ...
    def high_watermark(self, tp: TopicPartition) -> int | None: ...
    def take_ends(self) -> dict[TopicPartition, int]: ...
    def close(self) -> None: ...


class Sink(Store, Protocol):
    """The store as the runner sees it: the commit protocol's Store, plus the start-up
    steps, the replica's heartbeat (which brings operator requests) and close."""

    def start_from_savepoint(self) -> Mapping[TopicPartition, int]: ...
    def prepare(self) -> RoutedMapper: ...
    def heartbeat(self, acked: int | None) -> tuple[int, list[tuple[int, str]]]: ...
    def leave(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Checkpointing:
    """How this replica checkpoints: the state backend, the trigger policy, the fault
    hook, whether records the mapping refuses become dead letters, the clock, and what
    runs step 2 beside step 3 (None: inline, before it)."""

    backend: StateBackend
    policy: CheckpointPolicy
    faults: FaultHook
    tolerate_errors: bool
    clock: Callable[[], float]
    saver: Worker | None


class Runner:
    """One replica of a pipeline. connector/runtime/build.py builds the real one."""

    def __init__(self, source: Source, store: Sink, backend: StateBackend, policy: CheckpointPolicy,
                 faults: FaultHook = NO_FAULTS, shutdown_timeout_ms: int = 30_000,
                 stop: threading.Event | None = None, restart: RestartStrategy = DEFAULT_RESTART,
                 metrics: Metrics | None = None, health: Health | None = None, tolerate_errors: bool = False,
                 forwarder: Forwarder | None = None, clock: Callable[[], float] = time.monotonic,
                 saver: Worker | None = None) -> None:
        self._source, self._store, self._forwarder = source, store, forwarder
        self._checkpointing = Checkpointing(backend, policy, faults, tolerate_errors, clock, saver)
        self._lifecycle = Lifecycle(shutdown_timeout_ms, stop)
        self._gauges = Gauges(metrics or Metrics(), health or Health(stuck_after_s=600, stale_after_s=600), source,
                              clock)
        self._retries = Retries(restart, self._lifecycle.stop, self._retried)
        self._heartbeat = Heartbeat(store, clock)
        self._collector = Collector(clock)
        self.coordinator: CheckpointCoordinator | None = None

    @property
    def metrics(self) -> Metrics:
        return self._gauges.metrics

    @property
    def health(self) -> Health:
        return self._gauges.health

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> int:
        """Run until `request_stop()`; returns the exit code (errors propagate)."""
        self._lifecycle.watch()
        try:
            return self._run()
        finally:
            self._lifecycle.finished()

    def _run(self) -> int:
        try:
            self._retries.in_loop(self.start, "starting")
        except Interrupted:
            log.info("stop requested while starting")
            self._close_quietly()
            return 0
        try:
            while not self._lifecycle.stopping():
                self.step()
        except Interrupted:
            pass  # a stop cut a retry's wait short: the final checkpoint resumes it
        except BaseException:
            self._lifecycle.failed = True
            self._close_quietly()
            raise
        self.shutdown()
        return 0

    def start(self) -> None:
        """The start-up steps: START_FROM_SAVEPOINT (a pipeline with no offsets yet), the
        sink table read and checked, pending snapshots re-committed, then the group joined."""
        self._store.start_from_savepoint()
        mapper = self._store.prepare()
        setup = self._checkpointing
        self.coordinator = CheckpointCoordinator(self._store, setup.backend, self._source,
                                                 run_mapping(mapper, setup.tolerate_errors), setup.policy,
                                                 setup.clock, setup.faults, self._completed, CommitWorker(),
                                                 setup.saver)
        self.coordinator.recover()
        if self._forwarder is not None:
            self._forwarder.start()
        self._source.start(self)

    def step(self) -> None:
        runs = self._source.poll(min(self._checkpointing.policy.max_records, MAX_POLL_BATCH), self._poll_timeout_s())
        self.health.progressed()
        self.metrics.records.consumed.inc(sum(map(len, runs)))
        coord = self._coord
        self._buffer(runs)
        for tp, end in self._source.take_ends().items():  # after the records before each end
            coord.state.reached_end(tp, end)
        # After the runs in hand (fetched before any seek now: still refused), so what
        # the next poll returns of a partition whose seek now takes is read from there.
        coord.reposition()
        reason = coord.due()
        if reason is not None:
            self._take_overlapped(reason)
        elif not coord.busy() and not coord.settled():  # the commit worker is done: steps 4-5
            self._finish_in_flight()
        elif coord.settled() and coord.state.empty():
            self.health.checkpointed()  # nothing waits to be committed: as fresh as a checkpoint
        self._gauges.refresh(coord.state)
        self._collector.collect_if_due()
        if coord.busy() and self._heartbeat.due():
            # The store's connection is the commit worker's while it runs; under a steady
            # backlog one is nearly always running, so an overdue heartbeat waits for it.
            self._finish_in_flight()
        if not coord.busy():
            self._heartbeat.beat(self._requested_checkpoint, self.request_stop)

    def _poll_timeout_s(self) -> float:
        """POLL_TIMEOUT_S, cut short where the interval trigger fires sooner: a poll waits for
        a whole batch, so at a low rate it would hold the checkpoint past its interval."""
        due_in = self._coord.due_in_s()
        return POLL_TIMEOUT_S if due_in is None else min(POLL_TIMEOUT_S, due_in)

    def request_stop(self) -> None:
        self._lifecycle.request_stop()

    def shutdown(self) -> None:
        clock = self._checkpointing.clock
        started = clock()
        self._checkpoint_now("shutdown")
        self._source.close()  # leaves the group; the revoke callback finds nothing left
        if self._forwarder is not None:
            self._forwarder.close()
        with contextlib.suppress(TransientError):  # a stale row stops counting as live by itself
            self._store.leave()
        self._store.close()
        log.info("stopped cleanly in %.0f ms", (clock() - started) * 1000)

    # -- the loop's one verb ------------------------------------------------------------------
    def _buffer(self, runs: list[Run]) -> None:
        coord = self._coord
        while runs:
            try:
                runs = coord.add_runs(runs)
            except MappingError:
                self._checkpoint_now("before-error")  # land everything read before the bad record
                raise
            if coord.full():  # bounded buffer (I5): commit before reading on
                coord.refetched.clear()
                self._take_overlapped("full")
                if coord.refetched:  # fenced: the rest of this poll is read again from the database's offsets
                    runs = [run for run in runs if run.tp not in coord.refetched]

    # -- rebalances (called from inside poll) ---------------------------------------------------
    def on_assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int | None]:
        def initialize_state() -> Mapping[TopicPartition, int | None]:
            self._coord.recover()
            return self._coord.assign(partitions)
        starts = self._retries.bounded(initialize_state, "recovering and assigning partitions")
        self._gauges.assigned(starts)
        return starts

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        self._checkpointing.faults.reached("in_revoke")
        if not self._lifecycle.failed:
            self._checkpoint_now("revoke")
        self._release(partitions, "revoked")

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        self._release(partitions, "lost")

    def on_records_deleted(self, tp: TopicPartition, count: int) -> None:
        self.metrics.records.deleted.labels(tp[0], str(tp[1])).inc(count)

    def _release(self, partitions: list[TopicPartition], kind: str) -> None:
        self._coord.release(partitions)
        self._gauges.released(partitions, kind)

    # -- checkpoints, by name --------------------------------------------------------------------
    def _take_overlapped(self, reason: str) -> None:
        """Seal the buffer and leave its commit to the worker (after finishing the one in flight)."""
        self._retries.in_loop(lambda: self._coord.take_overlapped(reason), f"checkpoint ({reason})", self._checkpoint_failed)
        self.health.checkpointed()

    def _finish_in_flight(self) -> None:
        self._retries.in_loop(self._coord.finish_in_flight, "checkpoint (finishing)", self._checkpoint_failed)
        self.health.checkpointed()

    def _checkpoint_now(self, reason: str) -> None:
        """Commit everything buffered before going on (a revoke, the shutdown, a bad record)."""
        self._retries.bounded(lambda: self._coord.checkpoint_now(reason), f"checkpoint ({reason})", self._checkpoint_failed)
        self.health.checkpointed()

    def _requested_checkpoint(self) -> None:
        """An operator's `checkpoint` request (a savepoint): everything buffered, now."""
        self._retries.in_loop(lambda: self._coord.checkpoint_now("requested"), "checkpoint (requested)",
                      self._checkpoint_failed)
        self.health.checkpointed()

    def _completed(self, result: CheckpointResult) -> None:
        self._gauges.completed(result)
        if self._forwarder is not None and result.deadlettered:
            self._forwarder.wake()

    def _retried(self, exc: TransientError) -> None:
        self.metrics.checkpoints.retries.inc()
        self.health.progressed()  # waiting out an outage is not being stuck

    def _checkpoint_failed(self, exc: TransientError) -> None:
        self.metrics.checkpoints.outcomes.labels("timed-out" if isinstance(exc, CheckpointTimeout) else "failed").inc()

    @property
    def _coord(self) -> CheckpointCoordinator:
        assert self.coordinator is not None, "start() first"
        return self.coordinator

    def _close_quietly(self) -> None:
        closers = [self._source.close, self._store.close] + ([self._forwarder.close] if self._forwarder else [])
        for close in closers:
            try:
                close()
            except Exception:  # the error that stopped the loop matters more
                log.debug("close after failure also failed", exc_info=True)

