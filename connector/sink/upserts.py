"""An upsert checkpoint reduced per key so that its boundaries are invisible (I10). Pure.

The same records applied one per checkpoint or all in one must leave the same table.
`reduce_by_key` folds a key's records into as few rows as keep that true: field by field
(a partial upsert keeps what it does not name), additive columns summed exactly, and a
new *round* (a later merge statement) where only the database can apply a record on top
of the one before (floating-point sums; an increment whose base is the column default).
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from connector.sink.copytext import render_row
from connector.sink.mapping import REJECT, Op

# Exact sums: numeric and integer increments add as PostgreSQL adds them (no rounding at
# 28 digits; Infinity + -Infinity is NaN, as numeric's is).
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


def _sum(stored: str | None, increment: str | None) -> str:
    """An additive column's value after `increment`, as `upsert_from_stage` computes it
    (NULL counts as 0 on both sides)."""
    return str(_EXACT.add(Decimal(stored or 0), Decimal(increment or 0)))


def _mergeable(stored: Op, incoming: Op, additive: Sequence[str], summed_by_database: frozenset[str]) -> bool:
    """Whether `incoming` can be folded into `stored` (the same key's earlier upsert in
    this checkpoint) with the effect of applying both in turn. Not when it increments an
    additive column that `stored` does not name (the row's default would be the base) or
    one whose sum only the database computes exactly (floating point: addition is not
    associative, so the order of additions must stay the database's). A binary row (the
    C step's) is read by PostgreSQL alone: it folds only into a row it replaces whole."""
    if isinstance(stored.row, bytes) or isinstance(incoming.row, bytes):
        return _replaces(stored, incoming, additive)
    if not additive:
        return True
    named, before = set(incoming.columns), set(stored.columns)
    return all(c not in named or (c in before and c not in summed_by_database) for c in additive)


def _replaces(stored: Op, incoming: Op, additive: Sequence[str]) -> bool:
    """Whether `incoming` applied over `stored` is `incoming` itself: it names every
    column `stored` names and adds to none."""
    return set(stored.columns) <= set(incoming.columns) and not set(additive) & set(incoming.columns)


def _merge(stored: Op, incoming: Op, additive: Sequence[str]) -> Op:
    """`incoming` applied over `stored`: the fields it names replace the stored ones, the
    others keep theirs (a partial upsert), and `additive` columns are summed."""
    if _replaces(stored, incoming, additive):
        return incoming
    before, after = stored.values, incoming.values
    merged = {**before, **after}
    for col in additive:
        if col in after:
            merged[col] = _sum(before[col], after[col])
    return Op(incoming.kind, tuple(merged), render_row(list(merged.values())), incoming.key)


Reduced = dict[tuple[Any, ...], tuple[tuple[int, ...], Op]]


def reduce_by_key(ops: Sequence[Op], additive: Sequence[str] = (), summed_by_database: frozenset[str] = frozenset(),
                  versioned: bool = False) -> tuple[Reduced, list[Reduced]]:
    """Reduce a batch to at most one delete per key and a few rounds of upserts, at most
    one per key in each round; each with the indices of the records it stands for, in
    partition order. Applying the deletes, then the rounds in order, has the effect of
    applying the records one at a time (I10: checkpoint boundaries are invisible).

    Between tombstones a key's upserts fold into one (`_merge`: partial upserts keep the
    fields they do not name, additive columns are summed) unless `_mergeable` says the
    database must apply them in turn: then the next one opens the key's next round. A
    tombstone cancels the key's upserts before it and marks the key for deletion; its
    sources include the upserts it cancelled, so a delete the database refuses is
    replayed record by record. Upserts after it insert a fresh row (deletes run first).
    Rejected records are skipped. `versioned` (SINK_VERSION_COLUMN): a key's upserts
    never fold; each opens a round, and the database keeps the greatest version."""
    deletes: Reduced = {}
    chains: dict[tuple[Any, ...], list[tuple[tuple[int, ...], Op]]] = {}  # each key's rounds since its tombstone
    for i, op in enumerate(ops):
        if op.kind == REJECT:
            continue
        key = op.key
        if op.kind == "delete":
            cancelled = tuple(index for sources, _ in chains.pop(key, ()) for index in sources)
            deletes[key] = (deletes.get(key, ((), op))[0] + cancelled + (i,), op)
            continue
        chain = chains.setdefault(key, [])
        if chain and not versioned and _mergeable(chain[-1][1], op, additive, summed_by_database):
            sources, stored = chain[-1]
            chain[-1] = (sources + (i,), _merge(stored, op, additive))
        else:
            chain.append(((i,), op))
    rounds: list[Reduced] = []
    for key, chain in chains.items():
        for r, entry in enumerate(chain):
            if r == len(rounds):
                rounds.append({})
            rounds[r][key] = entry
    return deletes, rounds
