"""A table's columns as the mapping sees them: `ColumnSpec` (one column, from
reflection or SINK_AUTO_CREATE) and `Layout` (where each column of a row comes from,
worked out once per table). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from connector.fields import FieldRules
from connector.sink.arrays import is_array
from connector.sink.copytext import ESCAPED, Converter, column_converter, escape


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str  # one of the keys of CONVERTERS, or "other"
    nullable: bool = True
    has_default: bool = False
    length: int | None = None  # varchar(n) / char(n)
    field: str | None = None  # the value's field that fills it (SINK_FIELDS_RENAME), if not its name

    @property
    def source(self) -> str:
        return self.field or self.name


def converter(spec: ColumnSpec, zone: tzinfo) -> Converter:
    """The column's converter as a row takes it: an array's literal escaped for COPY at
    once (its quoting may add backslashes however clean the JSON: sink/arrays.py)."""
    convert = column_converter(spec.kind, spec.length, zone)
    return (lambda value: escape(convert(value))) if is_array(spec.kind) else convert


@dataclass(frozen=True)
class Layout:
    """Where each column of a row comes from, worked out once per table."""

    # Record metadata (SINK_METADATA_COLUMNS): (field, column, converter, escaped); these
    # columns take the record's metadata, never a same-named field of its value.
    metadata: tuple[tuple[str, str, Converter, bool], ...]
    plan: tuple[tuple[str, Converter, bool, bool], ...]  # (field, converter, escaped, not null): a value's, in slot order
    by_name: dict[str, tuple[str, Converter, bool, bool]]  # column -> its plan entry
    slots: tuple[str, ...]  # the row's columns, in order
    row_slots: tuple[str, ...]  # the columns a bare row fills (the fast path's: the table's, none added since)
    required: tuple[str, ...]  # not null and no default
    numeric: tuple[str, ...]  # read exactly from JSON (numeric and numeric[])
    kind: str  # the op's kind: upsert or insert
    key_slots: tuple[int, ...]
    known: frozenset[str]  # the value's fields a column takes or SINK_FIELDS_EXCLUDE leaves

    @classmethod
    def of(cls, columns: tuple[ColumnSpec, ...], added: tuple[ColumnSpec, ...], mode: str,
           key_columns: tuple[str, ...], metadata: Sequence[tuple[str, str]], zone: tzinfo,
           rules: FieldRules | None = None) -> Layout:
        every = columns + added
        by_name = {c.name: c for c in every}
        meta = tuple((field, column, converter(by_name[column], zone), by_name[column].kind in ESCAPED)
                     for field, column in metadata)
        meta_columns = {column for _, column, _, _ in meta}
        filled = [c for c in every if c.name not in meta_columns]
        plan = tuple((c.source, converter(c, zone), c.kind in ESCAPED, not c.nullable) for c in filled)
        slots = tuple(c.name for c in filled) + tuple(c for _, c, _, _ in meta)
        known = {c.source for c in filled} | meta_columns | set(rules.exclude if rules else ())
        return cls(meta, plan, {c.name: entry for c, entry in zip(filled, plan, strict=True)}, slots,
                   tuple(c.name for c in columns if c.name not in meta_columns) + tuple(c for _, c, _, _ in meta),
                   tuple(c.name for c in every if not c.nullable and not c.has_default),
                   tuple(c.source for c in every if c.kind in ("numeric", "numeric[]")), "upsert" if mode == "upsert" else "insert",
                   tuple(slots.index(k) for k in key_columns) if mode == "upsert" else (), frozenset(known))
