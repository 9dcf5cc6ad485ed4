"""What the runner reports: every completed checkpoint into the metrics, the gauges
(buffer, lag, gaps) at most every GAUGES_EVERY_S, and the backlog progress line."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from connector.models import CommitOutcome, TopicPartition
from connector.observability import Health, Metrics, Progress
from connector.protocol.checkpoint import CheckpointResult
from connector.protocol.state import OperatorState

log = logging.getLogger(__name__)
GAUGES_EVERY_S = 1.0  # lag and buffer gauges are refreshed at most this often
PROGRESS_EVERY_S = 5.0  # the backlog progress line, while there is lag


class Watermarks(Protocol):
    def high_watermark(self, tp: TopicPartition) -> int | None: ...


class Gauges:
    """The metrics and health of one replica, and the database's next_offset of each partition it owns."""

    def __init__(self, metrics: Metrics, health: Health, source: Watermarks, clock: Callable[[], float]) -> None:
        self.metrics, self.health, self._source, self._clock = metrics, health, source, clock
        self.committed: dict[TopicPartition, int | None] = {}  # owned partitions: the database's next_offset
        self._at: float | None = None
        self._progress = Progress(PROGRESS_EVERY_S)

    def completed(self, result: CheckpointResult) -> None:
        """A checkpoint completed (new, resumed or recovered): counted, timed, its offsets kept."""
        m = self.metrics
        m.checkpoints.outcomes.labels(result.outcome.value).inc()
        m.checkpoints.commit_latency.observe(result.commit_s)
        m.checkpoints.duration.observe(result.duration_s)
        if result.outcome is CommitOutcome.COMMITTED:
            m.records.written.inc(result.records - result.deadlettered - result.skipped)
            m.records.deadlettered.inc(result.deadlettered)
            m.records.skipped.inc(result.skipped)
            for table, written in result.tables:
                m.records.written_by_table.labels(table).inc(written)
            self._progress.written += result.records
        for tp, next_offset in result.offsets.items():
            if tp in self.committed:
                self.committed[tp] = next_offset

    def assigned(self, starts: Mapping[TopicPartition, int | None]) -> None:
        self.committed.update(starts)
        self._rebalanced("assigned")

    def released(self, partitions: Iterable[TopicPartition], kind: str) -> None:
        for topic, partition in partitions:
            self.committed.pop((topic, partition), None)
            with contextlib.suppress(KeyError):  # no lag reported for it yet
                self.metrics.partitions.lag.remove(topic, str(partition))
        self._rebalanced(kind)

    def _rebalanced(self, kind: str) -> None:
        self.metrics.partitions.rebalances.labels(kind).inc()
        self.metrics.partitions.assigned.set(len(self.committed))
        self.health.assigned = len(self.committed)

    def refresh(self, state: OperatorState) -> None:
        """At most every GAUGES_EVERY_S: the buffer, the gaps the broker explained, the
        lag of each owned partition; and the progress line while there is a backlog."""
        now = self._clock()
        if self._at is not None and now - self._at < GAUGES_EVERY_S:
            return
        self._at = now
        gaps = state.take_gaps()
        if gaps:  # explained by the broker (markers, compaction, retention): counted, and said
            self.metrics.records.gaps.inc(gaps)
            log.debug("%d offset(s) skipped by the broker past the read positions (transaction markers, "
                      "compaction, retention)", gaps)
        self.metrics.partitions.buffered_records.set(state.records)
        self.metrics.partitions.buffered_bytes.set(state.bytes)
        line = self._progress.line(now, self._lag())
        if line is not None:
            log.info(line)

    def _lag(self) -> int:
        total = 0
        for tp, committed in self.committed.items():
            high = self._source.high_watermark(tp)
            if high is not None:
                lag = max(0, high - (committed or 0))
                self.metrics.partitions.lag.labels(tp[0], str(tp[1])).set(lag)
                total += lag
        return total
