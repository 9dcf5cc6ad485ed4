"""Runs: what poll returns, kept columnar. Pure data, no I/O.

A run is a stretch of records of one partition that poll returned one after another,
in offset order. The loop reads a run's values and nothing else of most records, so a
run keeps the source's own messages and converts one into a `Record` only where a
record is needed whole (the general mapping, errors, dead letters); the snapshot codec
reads the fields it stores from all of them at once, through `Fields`.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from connector.models import Record, TopicPartition


class Fields(NamedTuple):
    """How to read a source's own message: item -> Record, and item -> each field the
    snapshot codec stores (each callable is called from C: a method or attribute getter).
    `columns`, when a source has one, reads offsets, timestamps and keys of many items
    at once (as the codec's `columns` does through the callables, without calling them)."""

    record: Callable[[Any], Record]
    offset: Callable[[Any], Any]  # an int
    key: Callable[[Any], Any]  # bytes or None
    timestamp: Callable[[Any], Any]  # ms: an int, None, or a (type, ms) pair (none when type is 0)
    headers: Callable[[Any], Any]  # a sequence of (name, value), or None
    columns: Callable[[Sequence[Any], Sequence[bytes | None]], tuple[bytes, ...]] | None = None


class Run:
    """Records of one partition that poll returned one after another, in offset order,
    kept columnar so the loop makes no object per record: `values` are the records'
    values, `items` the source's own messages (read through `fields`), and `record(i)`
    converts one into a Record only where a record is needed whole (the general mapping,
    errors, dead letters)."""

    __slots__ = ("fields", "items", "nbytes", "partition", "topic", "values")

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
        return Run(self.topic, self.partition, items, values, self.nbytes_of(start, len(items) + start), self.fields)

    def nbytes_of(self, start: int, stop: int) -> int:
        """Key and value bytes of records [start, stop)."""
        if start == 0 and stop == len(self.items):
            return self.nbytes
        return key_value_bytes(self.values[start:stop], map(self.fields.key, self.items[start:stop]))


def key_value_bytes(values: Iterable[bytes | None], keys: Iterable[bytes | None]) -> int:
    """Key and value bytes (CHECKPOINT_MAX_BYTES counts these)."""
    return sum(map(len, filter(None, values))) + sum(map(len, filter(None, keys)))


def _same(record: Record) -> Record:
    return record


RECORD_FIELDS = Fields(_same, operator.attrgetter("offset"), operator.attrgetter("key"),
                       operator.attrgetter("timestamp_ms"), operator.attrgetter("headers"))


def runs_of(records: Sequence[Record]) -> list[Run]:
    """Records (in poll order) as runs: one for each stretch of one partition."""
    runs: list[Run] = []
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or records[i].tp != records[start].tp:
            chunk = records[start:i]
            values = [r.value for r in chunk]
            runs.append(Run(chunk[0].topic, chunk[0].partition, chunk, values,
                            key_value_bytes(values, [r.key for r in chunk]), RECORD_FIELDS))
            start = i
    return runs


class RecordsView(Sequence["Record"]):
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
