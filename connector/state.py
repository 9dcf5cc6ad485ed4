"""Operator state: what a replica holds between checkpoints. Pure data, no I/O.

Offsets follow one rule everywhere: `next_offset` is the offset of the next record to
read (last read + 1). A partition's buffered range is `[start, end)`: `start` is the
position the replica read from (the database's `next_offset`, or None before the
partition's first ever commit), `end` is the last buffered record's offset + 1. `start`
is a *position*, not the first record's offset, so gaps left by compaction or
transaction markers never break the compare-and-set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    records: tuple[Record, ...]
    ops: tuple[Any, ...]

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


@dataclass
class _Buffer:
    start: int | None
    end: int
    records: list[Record] = field(default_factory=list)
    ops: list[Any] = field(default_factory=list)


class OperatorState:
    """Positions of the assigned partitions and the records buffered since the last
    snapshot. `add` refuses records that are not after the partition's position, so a
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
    def accepts(self, record: Record) -> bool:
        """True when `record` is the next one to buffer for its partition."""
        if record.tp not in self._positions:
            return False
        buffer = self._buffers.get(record.tp)
        position = buffer.end if buffer else self._positions[record.tp]
        return position is None or record.offset >= position

    def add(self, record: Record, op: Any) -> None:
        """Buffer `record` (mapped to `op`); the caller checked `accepts` first."""
        buffer = self._buffers.get(record.tp)
        if buffer is None:
            buffer = self._buffers[record.tp] = _Buffer(self._positions[record.tp], record.offset + 1)
        buffer.records.append(record)
        buffer.ops.append(op)
        buffer.end = record.offset + 1
        self.records += 1
        self.bytes += record.size

    def add_many(self, records: Sequence[Record], mapper: Callable[[Record], Any], max_records: int,
                 max_bytes: int) -> int:
        """`accepts` and `add` for each of `records` in turn (mapped by `mapper`; stale
        ones skipped), stopping once the buffer holds `max_records` or `max_bytes`.
        Returns how many of `records` it went through. An exception from `mapper`
        leaves that record out and everything before it buffered."""
        positions, buffers = self._positions, self._buffers
        count, nbytes, taken = self.records, self.bytes, 0
        try:
            for record in records:
                taken += 1
                tp = (record.topic, record.partition)
                offset = record.offset
                buffer = buffers.get(tp)
                if buffer is None:
                    if tp not in positions:
                        continue
                    start = positions[tp]
                    if start is not None and offset < start:
                        continue
                    op = mapper(record)
                    buffer = buffers[tp] = _Buffer(start, offset + 1)
                elif offset < buffer.end:
                    continue
                else:
                    op = mapper(record)
                buffer.records.append(record)
                buffer.ops.append(op)
                buffer.end = offset + 1
                count += 1
                key, value = record.key, record.value
                nbytes += record.size if record.headers else (len(value) if value else 0) + (len(key) if key else 0)
                if count >= max_records or nbytes >= max_bytes:
                    break
        finally:
            self.records, self.bytes = count, nbytes
        return taken

    def empty(self) -> bool:
        return self.records == 0

    def snapshot(self, checkpoint_id: int) -> Snapshot:
        """Freeze every buffer into checkpoint `checkpoint_id` and start fresh ones.
        Positions advance to each range's `end`."""
        ranges, records, ops = [], [], []
        for tp in sorted(self._buffers):
            buffer = self._buffers[tp]
            ranges.append(PartitionRange(tp[0], tp[1], buffer.start, buffer.end, len(buffer.records)))
            records.extend(buffer.records)
            ops.extend(buffer.ops)
            self._positions[tp] = buffer.end
        self._buffers.clear()
        self.records = self.bytes = 0
        return Snapshot(checkpoint_id, tuple(ranges), tuple(records), tuple(ops))

    def _drop_buffer(self, tp: TopicPartition) -> None:
        buffer = self._buffers.pop(tp, None)
        if buffer is not None:
            self.records -= len(buffer.records)
            self.bytes -= sum(r.size for r in buffer.records)
