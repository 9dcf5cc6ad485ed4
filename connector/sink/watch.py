"""The fields of a value that no column of its table takes: what the mapping does with
them (the catalog's `FieldWatch` is told of them: it logs and counts them, or adds their
column under SINK_AUTO_EVOLVE), and what the fast path may pass over. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from connector.fields import FieldRules
from connector.models import Record
from connector.sink.fastpath import ANY_OTHER, Others

Skip = Callable[[tuple[str, ...]], bool]  # the C step's question (sink/_rowbinary.c)


class FieldWatch(Protocol):
    """What becomes of the fields of a value no column of its table takes (the catalog's)."""

    rules: FieldRules  # SINK_FIELDS_*: a field excluded (or not included) is meant to be left

    def met(self, record: Record, fields: dict[str, Any]) -> Callable[[Record], Any] | None:
        """`record` holds `fields` (name -> value, not null) no column takes: the mapper
        that maps it instead (its table evolved: a RowMapper), or None (the fields are left)."""

    def counted(self, names: Sequence[str]) -> bool:
        """A record holds values of `names`, fields no column takes: True when they are
        only to be counted, as `met` would (each met before, no column to make for it),
        having counted them; False when `met` must see the record."""


def others(watch: FieldWatch | None, flatten_with: str | None, known: frozenset[str]) -> Others:
    """The fields besides the columns' that a value may hold on the Python fast path
    (`known`: those a column takes or SINK_FIELDS_EXCLUDE leaves). Under SINK_FLATTEN it
    answers only a value flattening leaves as it is: no object where a column's value is,
    no other field (an object's fields are other columns)."""
    rules = watch.rules if watch is not None else None
    if flatten_with is not None:
        return Others(left=rules.exclude if rules else (), any_field=False, objects=False)
    if rules is None:
        return ANY_OTHER  # ignored
    if rules.include is None:  # any other field is unknown: the general path tells the watch
        return Others(left=rules.exclude, any_field=False)
    return Others(watched=tuple(sorted(set(rules.include) - known)))


def _ignored(names: tuple[str, ...]) -> bool:  # no FieldWatch: a field no column takes is ignored
    return True


def skip(watch: FieldWatch | None, flatten_with: str | None) -> Skip | None:
    """What the C step asks of a record's fields no column takes that hold a value:
    whether the general path would leave them (SINK_FIELDS_EXCLUDE, not included) or
    only count them (the watch's `counted`). None under SINK_FLATTEN (an object is split
    into fields: the general path's work)."""
    if flatten_with is not None:
        return None
    if watch is None:
        return _ignored
    rules = watch.rules
    if not rules.exclude and rules.include is None:
        return watch.counted  # every such field is the watch's

    def ask(names: tuple[str, ...]) -> bool:
        told = [name for name in names if rules.takes(name)]  # as the general path tells the watch
        return not told or watch.counted(told)
    return ask
