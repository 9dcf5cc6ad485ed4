"""One checkpoint's ops written into every table they are routed to, inside the caller's
transaction: a BatchWriter per table (sink/writer.py), tables in name order (two
replicas writing the same tables take their locks in one order), each table first
created or given its new columns (SINK_AUTO_CREATE, SINK_AUTO_EVOLVE: sink/evolution.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

import sqlalchemy as sa

from connector.sink import evolution
from connector.sink.mapping import Payload
from connector.sink.new_keys import NewKeys
from connector.sink.sqlstate import Rejection
from connector.sink.table import Target
from connector.sink.writer import BatchWriter

log = logging.getLogger(__name__)


class Span(NamedTuple):
    """Ops [start, stop) of the checkpoint come from `topic`."""

    topic: str
    start: int
    stop: int


def spans_of(topics: Sequence[str]) -> list[Span]:
    """The spans of consecutive equal topics (a list of each op's topic)."""
    spans: list[Span] = []
    for i, topic in enumerate(topics):
        if spans and spans[-1].topic == topic:
            spans[-1] = spans[-1]._replace(stop=i + 1)
        else:
            spans.append(Span(topic, i, i + 1))
    return spans


def _back_to_back(spans: Sequence[Span], count: int) -> bool:
    """Whether `spans`, in order, are ops [0, count) with no gap: a table that takes every
    op (one topic's partitions, or every topic routed to it) writes them as they are,
    with no copy of the list."""
    at = 0
    for span in spans:
        if span.start != at:
            return False
        at = span.stop
    return at == count


class RoutedWriter:
    """Writes ops into their tables; afterwards `rejected` holds every op that wrote
    nothing (by its index among all the ops) and `tables` the rows written per table."""

    def __init__(self, conn: sa.Connection, target_for: Callable[[str], Target],
                 new_keys: Callable[[Target], NewKeys] | None = None) -> None:
        self._conn, self._target_for, self._new_keys = conn, target_for, new_keys
        self.rejected: dict[int, Rejection] = {}
        self.tables: dict[str, int] = {}

    def write(self, spans: Sequence[Span], ops: Sequence[Payload]) -> dict[str, int]:
        """Write `ops` (`spans` say which topic each comes from); rows written and deleted."""
        groups: dict[str, tuple[Target, list[Span]]] = {}
        for span in spans:
            target = self._target_for(span.topic)
            groups.setdefault(target.spec.qualified, (target, []))[1].append(span)
        counts = {"rows": 0, "deleted": 0}
        for n, name in enumerate(sorted(groups)):
            target, parts = groups[name]
            whole = _back_to_back(parts, len(ops))
            subset = ops if whole else [op for part in parts for op in ops[part.start:part.stop]]
            for statement in evolution.ensure(self._conn, target.table, target.changes, target.key_columns):
                log.info("table %r: %s", name, statement)
            rows = BatchWriter(self._conn, target, self._new_keys(target) if self._new_keys else None,
                               stages=f"eos_{n}")  # temporary tables: one namespace per transaction
            for kind, n in rows.write(subset).items():
                counts[kind] = counts.get(kind, 0) + n
            self.tables[name] = self.tables.get(name, 0) + len(subset) - len(rows.rejected) - rows.skipped
            index = range(len(ops)) if whole else [i for part in parts for i in range(part.start, part.stop)]
            self.rejected.update((index[i], why) for i, why in rows.rejected.items())
        return counts
