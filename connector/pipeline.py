"""The runner: owns a replica's lifecycle — start, the consumer loop, rebalances and
shutdown — and nothing else.

The loop is flat: poll -> buffer -> maybe checkpoint. A checkpoint the loop takes
(interval, full) overlaps: its database commit runs on the commit worker while the loop
reads on, and is settled before the next one is sealed (connector/checkpoint.py); the
replica then holds at most two checkpoints' worth of records. Rebalances arrive as the named
methods `on_assigned`, `on_revoked` and `on_lost` (called from inside poll):

- assigned: initialize_state — re-commit every pending snapshot, then resume each
  partition from the database's next_offset (I4);
- revoked: checkpoint and commit *before* the partitions are released (I7);
- lost: drop their buffers without a commit; another replica owns them now (I7).

SIGTERM (`request_stop`) ends the loop: a final checkpoint, leave the group, exit 0
within SHUTDOWN_TIMEOUT_MS (I8).

Every database step is retried on a transient failure (RESTART_STRATEGY): the
checkpoint being committed stays in hand (`CheckpointCoordinator.checkpoint` resumes
it), and no record is read while it waits. A stop requested during a wait ends the
wait and goes to the final checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from connector.models import CommitOutcome
from connector.checkpoint import CheckpointCoordinator, CheckpointPolicy, CheckpointResult, StateBackend, Store
from connector.config import Settings
from connector.errors import CheckpointTimeout, MappingError, TransientError
from connector.faults import NO_FAULTS, FaultHook
from connector.observability import Health, Metrics, Progress
from connector.retry import Interrupted, RestartStrategy, retrying
from connector.sink.mapping import RowMapper, tolerant
from connector.runs import Run
from connector.models import TopicPartition

if TYPE_CHECKING:
    from connector.deadletters import Forwarder
    from connector.source import RebalanceListener

log = logging.getLogger(__name__)
POLL_TIMEOUT_S = 0.1
MAX_POLL_BATCH = 10_000
GAUGES_EVERY_S = 1.0  # lag and buffer gauges are refreshed at most this often
PROGRESS_EVERY_S = 5.0  # the backlog progress line, while there is lag
SWITCH_INTERVAL_S = 0.0005  # how long the loop's thread may hold the GIL while the commit worker waits for it
GC_YOUNG_THRESHOLD = 500_000  # objects allocated, net, between young collections: a safety net (see run())
GC_EVERY_S = 60.0  # a full collection of cyclic garbage this often instead
HEARTBEAT_EVERY_S = 2.0  # the replica's heartbeat row; operator requests are read with it
T = TypeVar("T")


class Source(Protocol):
    def start(self, listener: "RebalanceListener") -> None: ...
    def poll(self, max_records: int, timeout_s: float) -> list[Run]: ...
    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None: ...
    def seek(self, offsets: Mapping[TopicPartition, int]) -> list[TopicPartition]: ...
    def high_watermark(self, tp: TopicPartition) -> int | None: ...
    def take_ends(self) -> dict[TopicPartition, int]: ...
    def close(self) -> None: ...


class Sink(Store, Protocol):
    """The store as the runner sees it: the commit protocol's Store, plus set-up, the
    replica's heartbeat (which brings operator requests) and close."""

    def start_from_savepoint(self) -> Mapping[TopicPartition, int]: ...
    def prepare(self) -> RowMapper: ...
    def heartbeat(self, acked: int | None) -> tuple[int, list[tuple[int, str]]]: ...
    def leave(self) -> None: ...
    def close(self) -> None: ...


def replica_id() -> str:
    """Unique per incarnation: host and PID alone repeat across containers that share
    a host name (host networking), where every replica may run as the same PID."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Runner:
    """One replica of a pipeline. Build the real one with `Runner.from_settings`."""

    def __init__(self, source: Source, store: Sink, backend: StateBackend, policy: CheckpointPolicy,
                 faults: FaultHook = NO_FAULTS, shutdown_timeout_ms: int = 30_000,
                 stop: threading.Event | None = None, restart: RestartStrategy = RestartStrategy(),
                 metrics: Metrics | None = None, health: Health | None = None, tolerate_errors: bool = False,
                 forwarder: Forwarder | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._source, self._store, self._backend = source, store, backend
        self._clock = clock  # the checkpoint interval's
        self._policy, self._faults, self._restart = policy, faults, restart
        self._shutdown_timeout_s = shutdown_timeout_ms / 1000.0
        self._stop = stop or threading.Event()
        self._finished = threading.Event()  # run() returned or raised: the shutdown watchdog stands down
        self._failed = False
        self.metrics = metrics or Metrics()
        self.health = health or Health(stuck_after_s=600, stale_after_s=600)
        self._committed: dict[TopicPartition, int | None] = {}  # owned partitions: the database's next_offset
        self._gauges_at = self._heartbeat_at = self._collected_at = 0.0
        self._acked: int | None = None  # newest operator request completed
        self._tolerate_errors, self._forwarder = tolerate_errors, forwarder
        self._progress = Progress(PROGRESS_EVERY_S)
        self.coordinator: CheckpointCoordinator | None = None

    @classmethod
    def from_settings(cls, settings: Settings, stop: threading.Event | None = None) -> Runner:
        from connector.backends import build_backend
        from connector.deadletters import Forwarder
        from connector.sink.postgres import PostgresStore
        from connector.source import KafkaSource

        faults = FaultHook(settings.connector_fault)
        replica = replica_id()
        log.info("replica %s of pipeline %r", replica, settings.connector_name)
        store = PostgresStore.from_settings(settings, replica, faults)
        policy = CheckpointPolicy(settings.checkpoint_interval_ms, settings.checkpoint_max_records,
                                  settings.checkpoint_max_bytes)
        # Alive while the loop moves (a commit may take CHECKPOINT_TIMEOUT_MS, a retry wait
        # up to the strategy's maximum); ready while checkpoints keep completing.
        timeout_s, max_wait_s = settings.checkpoint_timeout_ms / 1000, settings.restart_strategy.max_ms / 1000
        health = Health(stuck_after_s=timeout_s + max_wait_s + 30,
                        stale_after_s=2 * settings.checkpoint_interval_ms / 1000 + timeout_s + 10)
        return cls(KafkaSource(settings.consumer_config(), settings.kafka_topics, settings.on_data_loss), store,
                   build_backend(settings, store, faults), policy, faults, settings.shutdown_timeout_ms, stop,
                   settings.restart_strategy, Metrics(), health, settings.errors_tolerance == "all",
                   Forwarder.from_settings(settings, replica))

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> int:
        """Run until `request_stop()`; returns the exit code (errors propagate)."""
        # The commit worker needs the GIL for a moment between each chunk COPY sends;
        # Python's default 5 ms hand-over made a 100 000-row commit take 4x as long.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        threading.Thread(target=self._watch_shutdown, daemon=True, name="shutdown-watchdog").start()
        try:
            return self._run()
        finally:
            self._finished.set()

    def _run(self) -> int:
        try:
            self._retry(self.start, "starting", interruptible=True)
        except Interrupted:
            log.info("stop requested while starting")
            self._close_quietly()
            return 0
        # The loop holds up to two checkpoints of Kafka messages, which the collector
        # tracks; each young collection walked them all (~17 ms each, 6 % of the loop at
        # a threshold of 50 000; at the default 700, a fifth). Messages, rows and ops hold
        # no cycles, so cyclic garbage is rare here (exceptions, driver internals): it
        # is collected every GC_EVERY_S, and the raised threshold is only a safety net.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD)
        self._collected_at = time.monotonic()
        try:
            while not self._stop.is_set():
                self.step()
        except Interrupted:
            pass  # a stop cut a retry's wait short: the final checkpoint resumes it
        except BaseException:
            self._failed = True
            self._close_quietly()
            raise
        self.shutdown()
        return 0

    def start(self) -> None:
        self._store.start_from_savepoint()
        mapper = self._store.prepare()
        self.coordinator = CheckpointCoordinator(self._store, self._backend, self._source,
                                                 tolerant(mapper) if self._tolerate_errors else mapper,
                                                 self._policy, self._faults, self._clock, on_complete=self._observe,
                                                 fast=getattr(mapper, "fast", None))
        self.coordinator.recover()
        if self._forwarder is not None:
            self._forwarder.start()
        self._source.start(self)

    def step(self) -> None:
        runs = self._source.poll(min(self._policy.max_records, MAX_POLL_BATCH), POLL_TIMEOUT_S)
        self.health.progressed()
        self.metrics.consumed.inc(sum(map(len, runs)))
        coord = self._coord
        self._buffer(runs)
        for tp, end in self._source.take_ends().items():  # after the records before each end
            coord.state.reached_end(tp, end)
        # After the runs in hand (fetched before any seek now: still refused), so what
        # the next poll returns of a partition whose seek now takes is read from there.
        coord.reposition()
        reason = coord.due()
        if reason is not None:
            self._checkpoint(reason, interruptible=True, overlap=True)
        elif not coord.busy and not coord.settled():  # the commit worker is done: steps 4-5
            self._checkpoint("settle", interruptible=True, settle_only=True)
        elif coord.settled() and coord.state.empty():
            self.health.checkpointed()  # nothing waits to be committed: as fresh as a checkpoint
        self._refresh_gauges()
        self._collect_garbage()
        if coord.busy and time.monotonic() - self._heartbeat_at >= HEARTBEAT_EVERY_S:
            # The store's connection is the commit worker's while it runs; under a steady
            # backlog one is nearly always running, so an overdue heartbeat waits for it.
            self._checkpoint("settle", interruptible=True, settle_only=True)
        if not coord.busy:
            self._heartbeat()

    def request_stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        started = time.monotonic()
        self._checkpoint("shutdown")
        self._source.close()  # leaves the group; the revoke callback finds nothing left
        if self._forwarder is not None:
            self._forwarder.close()
        with contextlib.suppress(TransientError):  # a stale row stops counting as live by itself
            self._store.leave()
        self._store.close()
        log.info("stopped cleanly in %.0f ms", (time.monotonic() - started) * 1000)

    # -- the loop's one verb ------------------------------------------------------------------
    def _buffer(self, runs: list[Run]) -> None:
        coord = self._coord
        while runs:
            try:
                runs = coord.add_runs(runs)
            except MappingError:
                self._checkpoint("before-error")  # land everything read before the bad record
                raise
            if coord.full():  # bounded buffer (I5): commit before reading on
                coord.refetched.clear()
                self._checkpoint("full", interruptible=True, overlap=True)
                if coord.refetched:  # fenced: the rest of this poll is read again from the database's offsets
                    runs = [run for run in runs if run.tp not in coord.refetched]

    # -- rebalances (called from inside poll) ---------------------------------------------------
    def on_assigned(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int | None]:
        def initialize_state() -> Mapping[TopicPartition, int | None]:
            self._coord.recover()
            return self._coord.assign(partitions)
        starts = self._retry(initialize_state, "recovering and assigning partitions")
        self._committed.update(starts)
        self._rebalanced("assigned")
        return starts

    def on_revoked(self, partitions: list[TopicPartition]) -> None:
        self._faults.reached("in_revoke")
        if not self._failed:
            self._checkpoint("revoke")
        self._release(partitions, "revoked")

    def on_lost(self, partitions: list[TopicPartition]) -> None:
        self._release(partitions, "lost")

    def on_records_deleted(self, tp: TopicPartition, count: int) -> None:
        self.metrics.deleted.labels(tp[0], str(tp[1])).inc(count)

    def _release(self, partitions: list[TopicPartition], kind: str) -> None:
        self._coord.release(partitions)
        for topic, partition in partitions:
            self._committed.pop((topic, partition), None)
            with contextlib.suppress(KeyError):  # no lag reported for it yet
                self.metrics.lag.remove(topic, str(partition))
        self._rebalanced(kind)

    def _rebalanced(self, kind: str) -> None:
        self.metrics.rebalances.labels(kind).inc()
        self.metrics.assigned.set(len(self._committed))
        self.health.assigned = len(self._committed)

    # -- helpers ---------------------------------------------------------------------------------
    def _checkpoint(self, reason: str, interruptible: bool = False, overlap: bool = False,
                    settle_only: bool = False) -> None:
        """A checkpoint of the buffer, after settling the one in flight. `overlap`
        leaves its database commit to the commit worker; `settle_only` takes none."""
        def failed(exc: TransientError) -> None:
            self.metrics.checkpoints.labels("timed-out" if isinstance(exc, CheckpointTimeout) else "failed").inc()

        def attempt() -> CheckpointResult | None:
            coord = self._coord
            return coord.settle() if settle_only else coord.checkpoint(reason, overlap)

        started = time.monotonic()
        result = self._retry(attempt, f"checkpoint ({reason})", interruptible, failed)
        self.health.checkpointed()
        if result is not None:
            self.metrics.checkpoint_duration.observe(time.monotonic() - started)

    def _observe(self, result: CheckpointResult) -> None:
        self.metrics.checkpoints.labels(result.outcome.value).inc()
        self.metrics.commit_latency.observe(result.commit_ms / 1000.0)
        if result.outcome is CommitOutcome.COMMITTED:
            self.metrics.written.inc(result.records - result.deadlettered)
            self._progress.written += result.records
            self.metrics.deadlettered.inc(result.deadlettered)
            if self._forwarder is not None and result.deadlettered:
                self._forwarder.wake()
        for tp, next_offset in result.offsets.items():
            if tp in self._committed:
                self._committed[tp] = next_offset

    def _heartbeat(self, force: bool = False) -> None:
        """Every HEARTBEAT_EVERY_S: refresh the heartbeat and serve operator requests — a
        `checkpoint` now (for a savepoint), or a `stop` (stop-with-savepoint: the final
        checkpoint comes with the shutdown)."""
        now = time.monotonic()
        if not force and now - self._heartbeat_at < HEARTBEAT_EVERY_S:
            return
        self._heartbeat_at = now
        try:
            self._acked, pending = self._store.heartbeat(self._acked)
        except TransientError as exc:
            log.warning("heartbeat failed (next one in %.0f s): %s", HEARTBEAT_EVERY_S, exc)
            return
        for request_id, kind in pending:
            log.info("operator request %d: %s", request_id, kind)
            if kind == "stop":
                self.request_stop()
                return  # acknowledged by leaving, after the final checkpoint
            self._checkpoint("requested", interruptible=True)
            self._acked = request_id
        if pending:
            self._heartbeat(force=True)  # acknowledge now

    def _collect_garbage(self) -> None:
        now = time.monotonic()
        if now - self._collected_at >= GC_EVERY_S:
            self._collected_at = now
            gc.collect()

    def _refresh_gauges(self) -> None:
        now = time.monotonic()
        if now - self._gauges_at < GAUGES_EVERY_S:
            return
        self._gauges_at = now
        state = self._coord.state
        gaps = state.take_gaps()
        if gaps:  # explained by the broker (markers, compaction, retention): counted, and said
            self.metrics.gaps.inc(gaps)
            log.debug("%d offset(s) skipped by the broker past the read positions (transaction markers, "
                      "compaction, retention)", gaps)
        self.metrics.buffered_records.set(state.records)
        self.metrics.buffered_bytes.set(state.bytes)
        total = 0
        for tp, committed in self._committed.items():
            high = self._source.high_watermark(tp)
            if high is not None:
                lag = max(0, high - (committed or 0))
                self.metrics.lag.labels(tp[0], str(tp[1])).set(lag)
                total += lag
        line = self._progress.line(now, total)
        if line is not None:
            log.info(line)

    def _retry(self, fn: Callable[[], T], doing: str, interruptible: bool = False,
               on_failure: Callable[[TransientError], None] | None = None) -> T:
        """`fn()` retried on transient failures; an interruptible wait ends at a stop
        request (raising Interrupted). Waits inside rebalance callbacks and the final
        checkpoint are not interruptible: they are bounded by the strategy and by
        SHUTDOWN_TIMEOUT_MS."""
        def failed(exc: TransientError) -> None:
            self.metrics.retries.inc()
            self.health.progressed()  # waiting out an outage is not being stuck
            if on_failure is not None:
                on_failure(exc)
        return retrying(fn, self._restart, doing, self._stop.wait if interruptible else _sleep, failed)

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

    def _watch_shutdown(self) -> None:
        """I8 from the moment a stop is requested, wherever the replica is then (a commit
        waiting on a dead connection, a rebalance callback): exit within SHUTDOWN_TIMEOUT_MS."""
        self._stop.wait()
        if not self._finished.wait(self._shutdown_timeout_s):
            self._shutdown_overrun()

    def _shutdown_overrun(self) -> None:
        log.error("shutdown took longer than SHUTDOWN_TIMEOUT_MS=%d; exiting now (nothing is lost: "
                  "uncommitted records are read again on restart)", int(self._shutdown_timeout_s * 1000))
        logging.shutdown()
        os._exit(1)


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
