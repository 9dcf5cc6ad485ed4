"""Record -> row: a JSON object value becomes the same-named columns of the sink table.

Pure: the table's columns are described once (from reflection) as `ColumnSpec`s, each
with a converter chosen by type (connector/sink/copytext.py); mapping a record is
decoding its value and running the converters of the columns it names, straight into a
row of COPY text. Absent fields are left out (NULL or the column default on insert).
A field no column takes is told to the mapper's `FieldWatch` (the catalog's: it is
reported, or its column added by SINK_AUTO_EVOLVE); without one it is ignored. Anything
that cannot be converted raises MappingError with the record's topic, partition and offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, tzinfo
from typing import Any, NamedTuple, NoReturn

from connector.errors import MappingError
from connector.fields import flatten
from connector.formats import RegistryUnavailable, ValueDecoder, decode_json, decode_json_key, exact_json
from connector.models import Record
from connector.sink.copytext import NULL, column_converter, escape, parse_row
from connector.sink.fastpath import FastColumn, FastPath, compile_fast_path
from connector.sink.layout import ColumnSpec, Layout
from connector.sink.metadata import metadata_value
from connector.sink.watch import FieldWatch, others, skip

REJECT = "reject"
Row = str | bytes  # a row in COPY text format, or a COPY binary tuple (sink/statements.py)
_ABSENT: Any = object()  # a column the record does not name


class Op(NamedTuple):
    """What one record does to the table: `insert` (append mode), `upsert` or `delete`.
    In a checkpoint's ops, a plain row stands for the commonest op: an insert of that
    row into every value column (`as_op`).
    `row` is the record's row in COPY text format (tab-separated, escaped, ending in a
    newline; or, from the fast path's C step, a COPY binary tuple: bytes), filling
    `columns` (those the record names, in table order); `key` holds the key columns'
    COPY text (upsert, delete): two records with the same key text are one key; where
    the key's types let PostgreSQL find texts that differ equal (numeric, timestamps,
    char(n), …), the writer groups keys as the database compares them.
    A record that cannot be mapped, when errors are tolerated, is a `reject` op with
    `error` = (error class, message): it writes nothing and becomes a dead letter."""

    kind: str
    columns: tuple[str, ...] = ()
    row: Row = ""
    key: tuple[Any, ...] = ()
    error: tuple[str, str] | None = None

    @property
    def values(self) -> dict[str, str | None]:
        """The text row's fields by column, as text (None for NULL); a reject's error."""
        if self.error is not None:
            return {"error_class": self.error[0], "error": self.error[1]}
        assert isinstance(self.row, str), "a binary row is read by PostgreSQL alone"
        return dict(zip(self.columns, parse_row(self.row), strict=False))  # a row of no column parses as one empty field


# What one record does to the table, as a checkpoint holds it: an Op, or — for the
# commonest record, an insert of every value column — that row alone (the fast path's
# output, kept as it is, so the hot path makes no object per record): COPY text (str) or,
# from the C step, a COPY binary tuple (bytes).
Payload = Row | Op


def as_op(op: Payload, columns: tuple[str, ...]) -> Op:
    """An op as an Op: a row alone (what the fast path gives in append mode, kept in the
    buffer as it is) is the row of an insert into every value column, in table order."""
    return op if isinstance(op, Op) else Op("insert", columns, op)


def rejection(error_class: str, message: str) -> Op:
    return Op(REJECT, error=(error_class, message))


def tolerant(mapper: Callable[[Record], Op]) -> Callable[[Record], Op]:
    """ERRORS_TOLERANCE=all: a record that cannot be mapped becomes a `reject` op
    (a dead letter, written in the same commit transaction) instead of stopping."""
    def map_or_reject(record: Record) -> Op:
        try:
            return mapper(record)
        except MappingError as exc:
            return rejection(type(exc).__name__, exc.reason)
    return map_or_reject


class RowMapper:
    """Maps records to `Op`s for one table and mode. `key_columns` is required (and
    only used) in upsert mode."""

    def __init__(self, columns: Sequence[ColumnSpec], mode: str, key_columns: Sequence[str] = (),
                 metadata: Sequence[tuple[str, str]] = (), decode_value: ValueDecoder = decode_json,
                 zone: tzinfo = UTC, flatten_with: str | None = None, decode_key: ValueDecoder = decode_json_key,
                 added: Sequence[ColumnSpec] = (), watch: FieldWatch | None = None, summed: Sequence[str] = ()) -> None:
        """`zone`: the wall clock of `timestamp` columns (SINK_TIMEZONE); `flatten_with`:
        SINK_FLATTEN's separator (nested objects fill `parent_child` columns);
        `decode_key`: KEY_FORMAT's decoder of record keys; `added`: columns SINK_AUTO_EVOLVE
        adds (the general path fills them: a record naming one leaves the fast path);
        `watch`: told of the fields no column takes; `summed`: SINK_ADDITIVE_COLUMNS (the
        writer sums a key's records: their rows stay COPY text)."""
        self.columns, self.mode, self.key_columns = tuple(columns), mode, tuple(key_columns)
        self._decode_value, self._flatten_with, self._decode_key = decode_value, flatten_with, decode_key
        self._watch = watch
        self._layout = Layout.of(self.columns, tuple(added), mode, self.key_columns, metadata, zone,
                                 watch.rules if watch else None)
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per column set
        self.fast: FastPath | None = None
        if decode_value is decode_json and not self._layout.metadata and self.columns:
            self.fast = compile_fast_path([FastColumn(c.name, c.kind, c.length, c.nullable,
                                                      column_converter(c.kind, c.length, zone), c.source,
                                                      c.nullable or c.has_default)
                                           for c in self.columns], Op, self._layout.kind, self.key_columns,
                                          others(watch, flatten_with, self._layout.known), zone, summed,
                                          skip(watch, flatten_with))

    def __call__(self, record: Record) -> Op:
        """The record's op; MappingError naming the record for anything that stops it
        (whatever raised: a decoder's own error, RecursionError, … is this record's fault)."""
        try:
            value = record.value
            if value is None:
                return self._tombstone(record)
            if self.fast is not None:
                op: Payload | None = self.fast(value)
                if op is not None:
                    return as_op(op, self._layout.row_slots)
            return self.general(record)
        except (MappingError, RegistryUnavailable):  # a registry outage is no record's fault
            raise
        except Exception as exc:
            self._fail(record, f"{type(exc).__name__}: {exc}")

    def general(self, record: Record) -> Op:
        """Any record with a value; the fast path answers the common ones alike."""
        value = record.value
        assert value is not None
        document = self._document(record, value)
        if self._watch is not None:
            takes = self._watch.rules.takes
            valued = {name: document[name] for name in sorted(document.keys() - self._layout.known)
                      if document[name] is not None and takes(name)}  # a null: no value
            evolved = self._watch.met(record, valued) if valued else None
            if evolved is not None and evolved is not self:  # not self: a column no field fills has the name
                op: Op = evolved(record)
                return op
        # A JSON value without a backslash has nothing COPY would need escaped.
        fields, absent = self._fields(record, document, self._decode_value is decode_json and b"\\" not in value)
        if self._layout.metadata:
            self._add_metadata(record, fields)
        key: tuple[Any, ...] = ()
        if self._layout.key_slots:
            absent = self._fill_key(record, fields) or absent
            key = tuple([fields[slot] for slot in self._layout.key_slots])
        if not absent:
            return Op(self._layout.kind, self._layout.slots, "\t".join(fields) + "\n", key)
        columns = tuple(name for name, text in zip(self._layout.slots, fields, strict=True) if text is not _ABSENT)
        missing = [name for name in self._layout.required if name not in columns]
        if missing:
            self._fail(record, f"no value for NOT NULL column(s) {', '.join(missing)}")
        return Op(self._layout.kind, self._shapes.setdefault(columns, columns),
                  "\t".join(text for text in fields if text is not _ABSENT) + "\n", key)

    def _document(self, record: Record, value: bytes) -> dict[str, Any]:
        """The record's value decoded (and flattened: SINK_FLATTEN), numbers that fill a
        numeric column as written."""
        try:
            decoded = self._decode_value(record.topic, value)
        except ValueError as exc:
            self._fail(record, str(exc))
        if not isinstance(decoded, dict):
            self._fail(record, f"value is a JSON {type(decoded).__name__}, expected an object")
        document: dict[str, Any] = decoded
        separator = self._flatten_with
        if separator is not None:
            document = flatten(document, separator)
        if self._decode_value is decode_json and any(type(document.get(n)) in (float, list) for n in self._layout.numeric):
            exact = exact_json(value)  # a numeric column takes the number as written, not a double
            exact = flatten(exact, separator) if separator is not None else exact
            document = {**document, **{name: exact[name] for name in self._layout.numeric if name in exact}}
        return document

    def _fields(self, record: Record, document: dict[str, Any], clean: bool) -> tuple[list[Any], bool]:
        """Each value column's text (NULL, or _ABSENT when the document lacks it); and
        whether any is absent."""
        fields: list[Any] = []
        append, get = fields.append, document.get
        absent = False
        for name, convert, escaped, not_null in self._layout.plan:
            raw = get(name, _ABSENT)
            if raw is None:
                if not_null:
                    self._fail(record, f"field {name!r} is null but the column is NOT NULL")
                append(NULL)
            elif raw is _ABSENT:
                append(_ABSENT)
                absent = True
            else:
                try:
                    text = convert(raw)
                except (ValueError, TypeError, OverflowError) as exc:
                    self._fail(record, f"field {name!r}: {exc}")
                append(escape(text) if escaped and not clean else text)
        return fields, absent

    def _add_metadata(self, record: Record, fields: list[Any]) -> None:
        for field, column, convert, escaped in self._layout.metadata:
            raw = metadata_value(record, field)
            if raw is None:
                fields.append(NULL)
                continue
            try:
                text = convert(raw)
            except (ValueError, TypeError, OverflowError) as exc:
                self._fail(record, f"record {field} into column {column!r}: {exc}")
            fields.append(escape(text) if escaped else text)

    def _fill_key(self, record: Record, fields: list[Any]) -> bool:
        """Key columns the value leaves absent or null come from the record key; True
        when a column is still absent after that."""
        missing = [k for k, slot in zip(self.key_columns, self._layout.key_slots, strict=True)
                   if fields[slot] is _ABSENT or fields[slot] == NULL]
        if missing:
            for name, text in self._key_from_record_key(record, missing).items():
                fields[self._layout.slots.index(name)] = text
        return any(text is _ABSENT for text in fields)

    def _tombstone(self, record: Record) -> Op:
        if self.mode != "upsert":
            self._fail(record, f"null value (tombstone) in {self.mode} mode (only upsert deletes)")
        texts = self._key_from_record_key(record)
        fields = [texts[k] for k in self.key_columns]
        return Op("delete", self.key_columns, "\t".join(fields) + "\n", tuple(fields))

    def _key_from_record_key(self, record: Record, wanted: Sequence[str] | None = None) -> dict[str, str]:
        wanted = tuple(wanted or self.key_columns)
        raw = record.key
        if raw is None:
            self._fail(record, f"no value for key column(s) {', '.join(wanted)} in the value or the record key")
        key: Any
        try:
            key = self._decode_key(record.topic, raw)
        except ValueError as exc:
            self._fail(record, f"record key: {exc}")
        if not isinstance(key, dict):
            if len(self.key_columns) != 1:
                self._fail(record, f"a scalar record key cannot fill key columns {', '.join(self.key_columns)}")
            key = {self.key_columns[0]: key}
        texts: dict[str, str] = {}
        for name in wanted:
            entry = self._layout.by_name.get(name)
            if entry is None or key.get(name) is None:
                if entry is not None and entry[3] and name in key:
                    self._fail(record, f"field {name!r} is null but the column is NOT NULL")
                continue
            _, convert, escaped, _ = entry
            try:
                text = convert(key[name])
            except (ValueError, TypeError, OverflowError) as exc:
                self._fail(record, f"field {name!r}: {exc}")
            texts[name] = escape(text) if escaped else text
        absent = [k for k in wanted if k not in texts]
        if absent:
            self._fail(record, f"no value for key column(s) {', '.join(absent)}")
        return texts

    @staticmethod
    def _fail(record: Record, reason: str) -> NoReturn:
        raise MappingError(record.topic, record.partition, record.offset, reason)
