"""The data the protocol passes around: records, partitions, offset ranges, snapshots
and what a commit answered. Pure data, no I/O.

Offsets follow one rule everywhere: `next_offset` is the offset of the next record to
read (last read + 1); a range is `[start, end)` (connector/protocol/state.py says more).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

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


OpT = TypeVar("OpT")  # what the sink maps a record to (connector/sink/mapping.py: Payload)


@dataclass(frozen=True)
class Snapshot(Generic[OpT]):
    """Checkpoint `checkpoint_id`: the frozen buffer of every partition that had records.

    `records` hold each range's partition in turn, in the order of `ranges`, each in
    offset order (a range's `records` of them); `ops[i]` is the mapped form of
    `records[i]` (opaque here: the sink defines it)."""

    checkpoint_id: int
    ranges: tuple[PartitionRange, ...]
    records: Sequence[Record]
    ops: Sequence[OpT]

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


class CommitOutcome(enum.Enum):
    COMMITTED = "committed"
    ALREADY_COMMITTED = "already-committed"
    FENCED = "fenced"


class Commit(NamedTuple):
    """What the commit transaction did: its outcome, how many of the snapshot's records
    it dead-lettered (ERRORS_TOLERANCE=all) rather than wrote, how many it wrote into
    each table (by qualified name) and how many it skipped (insert-ignore)."""

    outcome: CommitOutcome
    deadlettered: int = 0
    tables: tuple[tuple[str, int], ...] = ()
    skipped: int = 0  # insert-ignore: records whose key was stored already
