"""Mapping dispatch: a run's records to ops by the mapping of the run's table — the
compiled fast path for each value it answers, the general mapping (the whole record)
for the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connector.models import Record
from connector.protocol.runs import Run
from connector.protocol.state import MappingFailed
from connector.sink.catalog import RoutedMapper
from connector.sink.fastpath import FastPath
from connector.sink.mapping import RowMapper, tolerant


class RunMapping:
    """The mapper as the coordinator uses it: `map_run` for the loop's runs, a call for
    one record (a snapshot's records mapped again on recovery)."""

    def __init__(self, general: Callable[[Record], Any], fast: FastPath | None = None) -> None:
        self._general, self._fast = general, fast

    def __call__(self, record: Record) -> Any:
        return self._general(record)

    def map_run(self, run: Run, start: int, stop: int) -> list[Any]:
        """The ops of `run`'s records [start, stop); MappingFailed at the first record
        the general mapping refuses, holding the ops before it."""
        values = run.values if start == 0 and stop == len(run.values) else run.values[start:stop]
        fast = self._fast
        ops: list[Any] = list(map(fast, values)) if fast is not None else [None] * len(values)
        if None in ops:
            for j, op in enumerate(ops):
                if op is None:
                    try:
                        ops[j] = self._general(run.record(start + j))
                    except Exception as exc:
                        raise MappingFailed(exc, ops[:j]) from exc
        return ops


class RoutedMapping:
    """Each run and record mapped by the RunMapping of its topic's table."""

    def __init__(self, mapper: RoutedMapper, tolerate_errors: bool) -> None:
        self._mapper, self._tolerate_errors = mapper, tolerate_errors
        self._by_topic: dict[str, tuple[Any, RunMapping]] = {}

    def _of(self, topic: str) -> RunMapping:
        """The RunMapping of the topic's table as it is now (SINK_AUTO_CREATE and
        SINK_AUTO_EVOLVE give a table a new mapper)."""
        mapper = self._mapper.catalog.mapper(topic)
        made = self._by_topic.get(topic)
        if made is None or made[0] is not mapper:
            made = self._by_topic[topic] = mapper, RunMapping(tolerant(mapper) if self._tolerate_errors else mapper,
                                                              mapper.fast)
        return made[1]

    def __call__(self, record: Record) -> Any:
        return self._of(record.topic)(record)

    def map_run(self, run: Run, start: int, stop: int) -> list[Any]:
        return self._of(run.topic).map_run(run, start, stop)


def run_mapping(mapper: Callable[[Record], Any], tolerate_errors: bool) -> RunMapping | RoutedMapping:
    """`mapper` dispatched; with ERRORS_TOLERANCE=all a record it refuses becomes a
    dead letter instead of stopping the pipeline."""
    if isinstance(mapper, RoutedMapper):
        return RoutedMapping(mapper, tolerate_errors)
    fast = mapper.fast if isinstance(mapper, RowMapper) else None
    return RunMapping(tolerant(mapper) if tolerate_errors else mapper, fast)
