"""Operator state: what a replica holds between checkpoints. Pure data, no I/O.

Offsets follow one rule everywhere: `next_offset` is the offset of the next record to
read (last read + 1). A partition's buffered range is `[start, end)`: `start` is the
position the replica read from (the database's `next_offset`, or None before the
partition's first ever commit), `end` is the last buffered record's offset + 1. `start`
is a *position*, not the first record's offset, so gaps left by compaction or
transaction markers never break the compare-and-set.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

TopicPartition = tuple[str, int]


class Record(NamedTuple):
    """One Kafka message, converted at the edge right after poll (a tuple: the loop
    makes one per record, and a tuple is the cheapest immutable object to make)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)

    @property
    def size(self) -> int:
        return len(self.key or b"") + len(self.value or b"") + sum(len(n) + len(v or b"") for n, v in self.headers)

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """The offsets one checkpoint covers in one partition: `[start, end)`."""

    topic: str
    partition: int
    start: int | None  # the database's next_offset this checkpoint builds on
    end: int  # the next_offset once this checkpoint is committed
    records: int

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True)
class Snapshot:
    """Checkpoint `checkpoint_id`: the frozen buffer of every partition that had records.

    `records` are in arrival order (offset order within a partition); `ops[i]` is the
    mapped form of `records[i]` (opaque here: the sink defines it)."""

    checkpoint_id: int
    ranges: tuple[PartitionRange, ...]
    records: Sequence[Record]
    ops: Sequence[Any]

    @property
    def partitions(self) -> tuple[TopicPartition, ...]:
        return tuple(r.tp for r in self.ranges)

    @property
    def size(self) -> int:
        return len(self.records)

    def describe(self) -> str:
        """`topic[p]:start-end` for every partition, for logs (`first` for a partition's
        first commit: its start is whatever offset was read first)."""
        return ", ".join(f"{r.topic}[{r.partition}]:{'first' if r.start is None else r.start}-{r.end}"
                         for r in self.ranges)


class Fields(NamedTuple):
    """How to read a source's own message: item -> Record, and item -> each field the
    snapshot codec stores (each callable runs under `map`, in C where it can), except
    `timestamps`: items -> their timestamps in ms (-1 for none)."""

    record: Callable[[Any], Record]
    offset: Callable[[Any], Any]  # an int
    key: Callable[[Any], Any]  # bytes or None
    timestamps: Callable[[Sequence[Any]], list[int]]
    headers: Callable[[Any], Any]  # a sequence of (name, value), or None


class Run:
    """Records of one partition that poll returned one after another, in offset order,
    kept columnar so the loop makes no object per record: `values` are the records'
    values, `items` the source's own messages (read through `fields`), and `record(i)`
    converts one into a Record only where a record is needed whole (the general mapping,
    errors, dead letters)."""

    __slots__ = ("topic", "partition", "items", "values", "nbytes", "fields")

    def __init__(self, topic: str, partition: int, items: Sequence[Any], values: Sequence[bytes | None], nbytes: int,
                 fields: Fields) -> None:
        self.topic, self.partition, self.items, self.values, self.nbytes = topic, partition, items, values, nbytes
        self.fields = fields

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)

    def __len__(self) -> int:
        return len(self.items)

    def offset(self, i: int) -> int:
        return int(self.fields.offset(self.items[i]))

    def record(self, i: int) -> Record:
        return self.fields.record(self.items[i])

    def first_at_or_after(self, position: int) -> int:
        """The index of the first record whose offset is >= `position` (offsets rise)."""
        low, high = 0, len(self.items)
        while low < high:
            mid = (low + high) // 2
            if self.offset(mid) < position:
                low = mid + 1
            else:
                high = mid
        return low

    def tail(self, start: int) -> Run:
        """The records from index `start` on."""
        items, values = self.items[start:], self.values[start:]
        nbytes = _bytes(values, map(self.fields.key, items)) if start else self.nbytes
        return Run(self.topic, self.partition, items, values, nbytes, self.fields)


def _bytes(values: Iterable[bytes | None], keys: Iterable[bytes | None]) -> int:
    """Key and value bytes (CHECKPOINT_MAX_BYTES counts these)."""
    return sum(map(len, filter(None, values))) + sum(map(len, filter(None, keys)))


def _same(record: Record) -> Record:
    return record


def _timestamps(records: Sequence[Record]) -> list[int]:
    return [-1 if r.timestamp_ms is None else r.timestamp_ms for r in records]


RECORD_FIELDS = Fields(_same, operator.attrgetter("offset"), operator.attrgetter("key"), _timestamps,
                       operator.attrgetter("headers"))


def runs_of(records: Sequence[Record]) -> list[Run]:
    """Records (in poll order) as runs: one for each stretch of one partition."""
    runs: list[Run] = []
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or records[i].tp != records[start].tp:
            chunk = records[start:i]
            values = [r.value for r in chunk]
            runs.append(Run(chunk[0].topic, chunk[0].partition, chunk, values,
                            _bytes(values, [r.key for r in chunk]), RECORD_FIELDS))
            start = i
    return runs


class RecordsView(Sequence[Record]):
    """A snapshot's records, converted from their runs only when read."""

    def __init__(self, segments: Sequence[tuple[Run, int, int]]) -> None:
        self.segments = tuple(segments)  # (run, start, stop): run's records [start, stop)
        self._ends: list[int] = list(itertools.accumulate(stop - start for _, start, stop in self.segments))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect.bisect_right(self._ends, index)
        run, start, _ = self.segments[k]
        return run.record(start + index - (self._ends[k - 1] if k else 0))

    def __iter__(self) -> Iterator[Record]:
        for run, start, stop in self.segments:
            for i in range(start, stop):
                yield run.record(i)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]


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
        self._positions: dict[TopicPartition, int | None] = {}
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self.records = 0
        self.bytes = 0

    # -- assignment -------------------------------------------------------------------
    def assign(self, tp: TopicPartition, next_offset: int | None) -> None:
        """Own `tp` from `next_offset` (None: no commit yet, read from Kafka's default)."""
        self._drop_buffer(tp)
        self._positions[tp] = next_offset

    def release(self, tp: TopicPartition) -> None:
        """Forget `tp` and anything buffered for it."""
        self._drop_buffer(tp)
        self._positions.pop(tp, None)

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
        if tp not in self._positions:
            return len(run)  # not ours (revoked or lost since it was fetched)
        buffer = self._buffers.get(tp)
        position = buffer.end if buffer is not None else self._positions[tp]
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
            self._keep(tp, buffer, run, start, start + len(failed.ops), failed.ops)
            raise failed.error from None
        self._keep(tp, buffer, run, start, stop, ops)
        return stop

    def _keep(self, tp: TopicPartition, buffer: _Buffer | None, run: Run, start: int, stop: int,
              ops: list[Any]) -> None:
        if start >= stop:
            return
        if buffer is None:
            buffer = self._buffers[tp] = _Buffer(self._positions[tp], 0)
        buffer.segments.append((run, start, stop))
        buffer.ops.extend(ops)
        buffer.end = run.offset(stop - 1) + 1
        whole = start == 0 and stop == len(run)
        nbytes = run.nbytes if whole else _bytes(run.values[start:stop], map(run.fields.key, run.items[start:stop]))
        buffer.nbytes += nbytes
        self.records += stop - start
        self.bytes += nbytes

    def empty(self) -> bool:
        return self.records == 0

    def snapshot(self, checkpoint_id: int) -> Snapshot:
        """Freeze every buffer into checkpoint `checkpoint_id` and start fresh ones.
        Positions advance to each range's `end`."""
        ranges, segments, ops = [], [], []
        for tp in sorted(self._buffers):
            buffer = self._buffers[tp]
            count = sum(stop - start for _, start, stop in buffer.segments)
            ranges.append(PartitionRange(tp[0], tp[1], buffer.start, buffer.end, count))
            segments.extend(buffer.segments)
            ops.extend(buffer.ops)
            self._positions[tp] = buffer.end
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
