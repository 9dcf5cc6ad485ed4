"""Operator state: what a replica holds between checkpoints. Pure data, no I/O.

Offsets follow one rule everywhere: `next_offset` is the offset of the next record to
read (last read + 1). A partition's buffered range is `[start, end)`: `start` is the
position the replica read from (the database's `next_offset`, or None before the
partition's first ever commit), `end` is the last buffered record's offset + 1. `start`
is a *position*, not the first record's offset, so gaps left by compaction or
transaction markers never break the compare-and-set.

A partition's *read position* is where its next record must be at or after: the range's
start, except after a fence of a partition with no offsets row yet, when it is the first
offset of the range that was fenced (its start stays None: the compare-and-set still
expects no row). A record before the read position is stale and skipped. A record past it
is a gap the broker made (compaction, transaction markers, retention) — counted in
`gaps` — as long as the consumer really reads from there: a partition whose seek did not
take (`unpositioned`) buffers nothing until it is positioned again (I11).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.models import PartitionRange, Snapshot, TopicPartition
from connector.protocol.runs import RecordsView, Run


@dataclass
class _Buffer:
    start: int | None
    end: int
    segments: list[tuple[Run, int, int]] = field(default_factory=list)
    ops: list[Any] = field(default_factory=list)
    nbytes: int = 0


class OperatorState:
    """Positions of the assigned partitions and the records buffered since the last
    snapshot. Records that are not after their partition's position are skipped, so a
    stale redelivery can never be buffered twice."""

    def __init__(self) -> None:
        self._starts: dict[TopicPartition, int | None] = {}  # the database's next_offset
        self._positions: dict[TopicPartition, int | None] = {}  # the read position
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._unpositioned: set[TopicPartition] = set()
        self._ends: dict[TopicPartition, int] = {}  # where the consumer last found each partition's end
        self.records = 0
        self.bytes = 0
        self.gaps = 0  # offsets the broker skipped past a partition's read position

    # -- assignment -------------------------------------------------------------------
    def assign(self, tp: TopicPartition, next_offset: int | None, read_from: int | None = None) -> None:
        """Own `tp` from the database's `next_offset` (None: no commit yet, read from
        Kafka's default), read from `read_from` when given (a fenced first range)."""
        self._drop_buffer(tp)
        self._unpositioned.discard(tp)
        self._ends.pop(tp, None)
        self._starts[tp] = next_offset
        self._positions[tp] = next_offset if read_from is None else read_from

    def release(self, tp: TopicPartition) -> None:
        """Forget `tp` and anything buffered for it."""
        self._drop_buffer(tp)
        self._starts.pop(tp, None)
        self._positions.pop(tp, None)
        self._unpositioned.discard(tp)
        self._ends.pop(tp, None)

    def position(self, tp: TopicPartition) -> int | None:
        """Where `tp`'s next record must be at or after (None: wherever Kafka starts)."""
        buffer = self._buffers.get(tp)
        return buffer.end if buffer is not None else self._positions.get(tp)

    def unpositioned(self, tp: TopicPartition) -> None:
        """The consumer could not be moved to `tp`'s read position: buffer nothing of
        `tp` until `positioned` (what it reads now may start anywhere)."""
        self._drop_buffer(tp)
        self._unpositioned.add(tp)
        self._ends.pop(tp, None)

    def positioned(self, tp: TopicPartition) -> None:
        self._unpositioned.discard(tp)

    def take_gaps(self) -> int:
        """Offsets skipped past read positions since the last call (for a metric)."""
        gaps, self.gaps = self.gaps, 0
        return gaps

    @property
    def waiting_for_position(self) -> tuple[TopicPartition, ...]:
        return tuple(sorted(self._unpositioned))

    def owns(self, tp: TopicPartition) -> bool:
        return tp in self._positions

    @property
    def assigned(self) -> tuple[TopicPartition, ...]:
        return tuple(sorted(self._positions))

    # -- buffering --------------------------------------------------------------------
    def add_runs(self, runs: Sequence[Run], map_run: Callable[[Run, int, int], list[Any]], max_records: int,
                 max_bytes: int) -> list[Run]:
        """Buffer `runs` in order, each record mapped by `map_run(run, start, stop)`
        (stale records skipped), until the buffer holds `max_records` or `max_bytes`.
        Returns what is left unread: the rest of a run cut short, then the runs after it.
        A MappingError from `map_run` (raised after mapping every record before the bad
        one) leaves those earlier records buffered and the bad one out."""
        for k, run in enumerate(runs):
            stop = self._add_run(run, map_run, max_records - self.records, max_bytes - self.bytes)
            if stop < len(run):
                return [run.tail(stop), *runs[k + 1:]]
            if self.records >= max_records or self.bytes >= max_bytes:
                return list(runs[k + 1:])
        return []

    def _add_run(self, run: Run, map_run: Callable[[Run, int, int], list[Any]], room: int, room_bytes: int) -> int:
        """Buffer up to `room` records of `run`, stopping after the record whose value
        reaches `room_bytes`; the index where it stopped."""
        tp = run.tp
        if tp not in self._positions or tp in self._unpositioned:
            return len(run)  # not ours (revoked or lost since it was fetched), or read from the wrong place
        buffer = self._buffers.get(tp)
        position = self.position(tp)
        start = 0 if position is None or run.offset(0) >= position else run.first_at_or_after(position)
        stop = min(len(run), start + room)
        if run.nbytes > room_bytes and start < stop:  # the record that fills the buffer is the last
            sizes = itertools.accumulate(len(value) if value else 0 for value in run.values[start:stop])
            stop = start + next((i + 1 for i, total in enumerate(sizes) if total >= room_bytes), stop - start)
        if start >= stop:
            return stop
        try:
            ops = map_run(run, start, stop)
        except MappingFailed as failed:
            self._keep(tp, buffer, position, run, start, start + len(failed.ops), failed.ops)
            raise failed.error from None
        self._keep(tp, buffer, position, run, start, stop, ops)
        return stop

    def _keep(self, tp: TopicPartition, buffer: _Buffer | None, position: int | None, run: Run, start: int,
              stop: int, ops: list[Any]) -> None:
        if start >= stop:
            return
        if position is not None:  # offsets the broker skipped: before the run, or inside it
            self.gaps += run.offset(stop - 1) + 1 - position - (stop - start)
        if buffer is None:
            buffer = self._buffers[tp] = _Buffer(self._starts[tp], 0)
        buffer.segments.append((run, start, stop))
        buffer.ops.extend(ops)
        buffer.end = run.offset(stop - 1) + 1
        nbytes = run.nbytes_of(start, stop)
        buffer.nbytes += nbytes
        self.records += stop - start
        self.bytes += nbytes

    def reached_end(self, tp: TopicPartition, end: int) -> None:
        """The consumer read `tp` to its end: its next record will be at `end` or after.
        Offsets between the read position and `end` hold no record (a transaction's
        marker, aborted records): the partition's range moves to `end`, in a buffer of
        no records if none is open, so the next checkpoint commits that next_offset."""
        if tp not in self._positions or tp in self._unpositioned:
            return
        self._ends[tp] = end
        position = self.position(tp)
        if end <= (0 if position is None else position):  # nothing read past: an empty partition's 0 too
            return
        self._buffers.setdefault(tp, _Buffer(self._starts[tp], end)).end = end

    def caught_up(self) -> bool:
        """Every assigned partition read to its end: no record has come in since the
        consumer last found it there (a later end is known only once read to)."""
        return bool(self._positions) and not self._unpositioned and all(
            tp in self._ends and self._ends[tp] >= (self.position(tp) or 0) for tp in self._positions)

    @property
    def moved(self) -> int:
        """Buffers of no record: partitions only read past markers to their end."""
        return sum(not buffer.segments for buffer in self._buffers.values())

    def empty(self) -> bool:
        return not self._buffers

    def snapshot(self, checkpoint_id: int) -> Snapshot[Any]:
        """Freeze every buffer into checkpoint `checkpoint_id` and start fresh ones.
        Positions advance to each range's `end`."""
        ranges, segments, ops = [], [], []
        for tp in sorted(self._buffers):
            buffer = self._buffers[tp]
            count = sum(stop - start for _, start, stop in buffer.segments)
            ranges.append(PartitionRange(tp[0], tp[1], buffer.start, buffer.end, count))
            segments.extend(buffer.segments)
            ops.extend(buffer.ops)
            self._starts[tp] = self._positions[tp] = buffer.end
        self._buffers.clear()
        self.records = self.bytes = 0
        return Snapshot(checkpoint_id, tuple(ranges), RecordsView(segments), tuple(ops))

    def _drop_buffer(self, tp: TopicPartition) -> None:
        buffer = self._buffers.pop(tp, None)
        if buffer is not None:
            self.records -= len(buffer.ops)
            self.bytes -= buffer.nbytes


class MappingFailed(Exception):
    """Raised by a `map_run` function: `error` stopped it after mapping `ops` (the
    records before the one at fault)."""

    def __init__(self, error: Exception, ops: list[Any]) -> None:
        super().__init__(str(error))
        self.error, self.ops = error, ops
