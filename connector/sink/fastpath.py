r"""The common record's row, without a Python call per column. Pure.

Most records of a stream have one shape: a JSON object naming every value column with
the type its column expects, or null where the column is nullable. For such a table
this module builds a msgspec Struct type whose fields are the columns, each typed as its
column expects (a bigint's range, a varchar's length; `| None` when nullable), and
compiles one function around it: msgspec decodes and checks the value in C, and the
function formats the row's COPY text with the column loop unrolled (a Python call per
column is most of the cost of mapping a record at several hundred thousand a second).

A record may leave out columns with a default and nullable ones (`optional`: an
identity, `DEFAULT now()`): `partial` then gives the op the general path gives it, naming
the columns the record has (one tuple per set), its row escaped in bulk.

The function returns None for anything else (a required field absent, a null in a NOT NULL or
key column, another type, a value that fails to parse, a `\u0000`, any error decoding
it): the general path in `RowMapper` then maps the record, and raises its MappingError
when there is one. So the fast path decides nothing on its own: it agrees with the
general path wherever it answers, which `tests/unit/test_fastpath.py` checks on
arbitrary records.

Text as users have it takes the fast path too. A JSON document without a backslash has
no character COPY treats specially in any string, so its row is sent as formatted. One
with a backslash (any JSON escape: `\"`, `\\`, `\t`, `\n`, `\u00e9`) is formatted with
one lone surrogate between its fields and another for NULL, and escaped for COPY in bulk:
four `str.replace` calls over the whole row, then the surrogates become the tabs and
`\N`s. No decoded text holds a lone surrogate (msgspec refuses one). A row holding a NUL
(`\u0000`) is the general path's: PostgreSQL stores no NUL.

The first step is C (`connector/sink/_rowbinary.c`): for a table whose columns are all of
kinds it writes (`_rowbinary.KINDS`: integers, numeric, double precision and real,
boolean, text and varchar(n), timestamptz and timestamp, date, uuid, jsonb, text[]),
appended or keyed by integer, text or uuid columns without additive ones (its key is the
COPY text the Python function gives), and no jsonb column under SINK_FLATTEN, a flat JSON
object holding each column once is turned into its row in COPY's binary format (bytes)
in one call, without decoding the text into Python; whatever it does not answer
goes to the Python function below, which it calls itself, and whose rows are COPY text
(str). A checkpoint's rows may hold both: the writer sends each format in a COPY of its
own (sink/statements.py). It answers only where PostgreSQL reads the same values from its
row as from that function's, which `tests/unit/test_rowbinary.py` checks on arbitrary
records, and records leaving out optional columns as the Python function does.

Both read a `numeric` column's JSON number exactly, as written (msgspec decodes it
into a Decimal; the general path reads such a document again exactly), and a number
beyond a double's range anywhere in a document (`1e400`) is read exactly by both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Annotated, Any, NamedTuple

import msgspec

from connector.sink._rowbinary import KINDS as ROW_BINARY_KINDS
from connector.sink._rowbinary import RowBinary
from connector.sink.arrays import is_array
from connector.sink.copytext import ESCAPED, INT_BITS, NULL, Converter, escape, is_plain_timestamp

FastPath = Callable[[bytes | None], Any]  # value -> the op (or its row alone), or None (a null value too)
_UNMATCHABLE = re.compile(r'["\\\x00-\x1f]')
# Kinds whose converter takes the JSON string itself: the field is typed `str`.
_STRING_KINDS = frozenset({"timestamp", "time", "uuid", "bytea"})
_C_KEY_KINDS = frozenset({*INT_BITS, "text", "uuid"})  # key columns whose key text the C step forms
_UTC_KEYS = frozenset({"UTC", "Etc/UTC"})  # zones whose wall time is UTC's, as SINK_TIMEZONE names them
# A row before its bulk escape: no decoded text holds a lone surrogate.
_NULL_MARK, _SEPARATOR = "\ud800", "\udc00"


class FastColumn(NamedTuple):
    name: str
    kind: str
    length: int | None  # varchar(n) / char(n)
    nullable: bool  # a JSON null is NULL here (key columns never: the general path fills them from the key)
    convert: Converter
    field: str = ""  # the JSON field that fills it, if not its name (SINK_FIELDS_RENAME)
    optional: bool = False  # a record may leave it out (nullable, or with a default): both steps answer then too

    @property
    def source(self) -> str:
        return self.field or self.name


class Others(NamedTuple):
    """The fields a value may hold besides the columns' and still take the fast path:
    `left` (SINK_FIELDS_EXCLUDE: never read), `watched` (no column takes them yet: a
    record holding one with a value is the general path's) and, when `any_field`, any
    other field (ignored); without it, a record holding another is the general path's."""

    left: tuple[str, ...] = ()
    watched: tuple[str, ...] = ()
    any_field: bool = True
    objects: bool = True  # False under SINK_FLATTEN: an object is split into fields, the general path's work


ANY_OTHER = Others()


def escape_row(fields: str) -> str | None:
    """Fields joined by `_SEPARATOR`, NULLs as `_NULL_MARK`, as a COPY text row: escaped,
    tab-separated. None when a field holds a NUL."""
    if "\x00" in fields:
        return None
    return escape(fields).replace(_SEPARATOR, "\t").replace(_NULL_MARK, NULL) + "\n"


def _field_type(kind: str, length: int | None, objects: bool = True) -> Any:
    """The msgspec type of a column's field: what the fast path's code below expects
    (`objects`: whether a JSON object may be a json column's value)."""
    if kind in INT_BITS:
        bits = INT_BITS[kind]
        return Annotated[int, msgspec.Meta(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1)]
    if kind == "text" and length is not None:
        return Annotated[str, msgspec.Meta(max_length=length)]
    if kind in ("text", "timestamptz") or kind in _STRING_KINDS:
        return str
    if kind == "date":
        return date  # msgspec reads YYYY-MM-DD in C; the general path takes any form Python's parser does
    if kind == "numeric":
        return Decimal  # the number as written (a string holding one too, as the general path takes it)
    if kind in ("float", "real"):
        return float
    if kind == "boolean":
        return bool
    if kind == "numeric[]":
        return list[Decimal | None]  # exact, as the general path reads it (a nested array: the general path's)
    if not objects:
        return list | str | int | float | bool  # json, other, arrays: any JSON value but an object
    return Any  # json, other, arrays: any JSON value (null checked below)


def _field(kind: str, i: int) -> tuple[str, str]:
    """Python source that checks a non-null field `row.f{i}` (returning None where the
    fast path defers), and the expression of its COPY text."""
    if kind == "numeric":  # str() of the Decimal; sNaN is no number PostgreSQL stores
        return f"if row.f{i}.is_snan(): return None", f"row.f{i}"
    if kind in INT_BITS or kind in ("float", "real", "text"):
        return "", f"row.f{i}"  # the f-string formats it: str() of an int, repr() of a float
    if kind == "boolean":
        return "", f'("t" if row.f{i} else "f")'
    if kind == "date":
        return "", f"row.f{i}.isoformat()"
    if kind == "timestamptz":  # parsed to validate; sent as written when plain (copytext.is_plain_timestamp)
        return f"v{i} = row.f{i}\nfrom_iso(v{i})\nif not plain(v{i}): return None", f"v{i}"
    if is_array(kind):  # the literal, raw: escaped even in a clean row (see _Source)
        return f"v{i} = convert[{i}](row.f{i})", f"v{i}"
    return f"v{i} = row.f{i}\nif v{i} is None: return None\nv{i} = convert[{i}](v{i})", f"v{i}"


class _Source(NamedTuple):
    """One field's generated source: its check, and its text as sent clean and before the bulk escape."""

    check: str
    clean: str
    unescaped: str

    @classmethod
    def of(cls, column: FastColumn, i: int) -> _Source:
        check, text = _field(column.kind, i)
        # bytea's converter gives its backslash escaped already (`\\x…`), which the bulk escape would double;
        # an array's literal is raw, and needs escaping however clean the JSON (sink/arrays.py)
        unescaped = f"{text}[1:]" if column.kind == "bytea" else text
        text = f"escape({text})" if is_array(column.kind) else text
        if not column.nullable:
            return cls(check, text, unescaped)
        if check:
            check = f"if row.f{i} is not None:\n" + "\n".join(" " + line for line in check.splitlines())
        null = f"row.f{i} is None"
        return cls(check, f"(NULL if {null} else {text})", f"(NULL_MARK if {null} else {unescaped})")


def _returns(columns: Sequence[FastColumn], fields: Sequence[_Source], keys: Sequence[int]) -> list[str]:
    """The fast path's last lines: the row (and key) of a value without a backslash as
    formatted, of one with a backslash escaped in bulk."""
    lines = []
    if any(column.kind in ESCAPED for column in columns):  # a backslash-free value needs no escaping
        row = "\\udc00".join(f"{{{field.unescaped}}}" for field in fields)  # _SEPARATOR
        lines += [" if b'\\\\' in value:", f"  line = escape_row(f'{row}')", "  if line is None: return None"]
        key = "".join(f"escape(str({fields[k].clean})), " if columns[k].kind in ESCAPED else f"str({fields[k].clean}), "
                      for k in keys)
        lines.append(f"  return new(op, (kind, names, line, ({key}), None))" if keys else "  return line")
    row = "\\t".join(f"{{{field.clean}}}" for field in fields) + "\\n"
    if not keys:
        return [*lines, f" return f'{row}'"]
    key = "".join(f"str({fields[k].clean}), " for k in keys)  # a key is its columns' COPY text, as RowMapper gives it
    return [*lines, f" return new(op, (kind, names, f'{row}', ({key}), None))"]


def _partial(columns: Sequence[FastColumn], fields: Sequence[_Source], keys: Sequence[int]) -> list[str]:
    """Source of `partial(row)`: the op of a value that leaves out optional columns (a
    default, or NULL, fills them), naming the columns it has (one tuple per set, in
    `shapes`), its row escaped in bulk; None where a field defers. One function per
    field computes its text."""
    lines = []
    for i, field in enumerate(fields):
        lines += [f"def part{i}(row):", *(" " + line for line in field.check.splitlines()),
                  f" return f'{{{field.unescaped}}}'"]
    plan = ", ".join(f"({c.name!r}, 'f{i}', part{i})" for i, c in enumerate(columns))
    key = "".join(f"escape(texts[names.index({columns[k].name!r})]), " for k in keys)
    return [*lines, f"PLAN = ({plan},)", "def partial(row):", " names, texts = [], []", " try:",
            "  for name, attr, part in PLAN:", "   if getattr(row, attr) is UNSET: continue", "   text = part(row)",
            "   if text is None: return None", "   names.append(name)", "   texts.append(text)",
            " except (ValueError, TypeError, OverflowError): return None",
            " line = escape_row(SEPARATOR.join(texts))", " if line is None: return None",
            " shape = tuple(names)", f" return new(op, (kind, shapes.setdefault(shape, shape), line, ({key}), None))"]


def _source(columns: Sequence[FastColumn], fields: Sequence[_Source], keys: Sequence[int]) -> list[str]:
    """Source of `fast(value)`: decode, check each field, format the row; a value that
    leaves out an optional column goes to `partial`."""
    optional = ", ".join(f"row.f{i}" for i, c in enumerate(columns) if c.optional)
    return ["def fast(value):", " try:", "  row = decode(value)", " except ERRORS: return None",
            *([f" if UNSET in ({optional},): return partial(row)"] if optional else []),
            " try:", *("  " + line for field in fields for line in field.check.splitlines()), "  pass",
            " except (ValueError, TypeError, OverflowError): return None",
            *_returns(columns, fields, keys), *_partial(columns, fields, keys)]


def _row_type(columns: Sequence[FastColumn], others: Others) -> Any:
    """The msgspec Struct a value decodes into: fields f0, f1, … for the columns (column
    names reach the generated code only through `rename`), then the other fields allowed.
    gc=False: a decoded row holds no reference cycle, and untracked it costs the collector
    nothing (a poll batch makes thousands)."""
    fields: list[Any] = []
    for i, column in enumerate(columns):
        kind = _field_type(column.kind, column.length, others.objects)
        kind = kind | None if column.nullable else kind
        fields.append((f"f{i}", kind | msgspec.UnsetType, msgspec.UNSET) if column.optional else (f"f{i}", kind))
    fields += [(f"l{i}", msgspec.Raw, msgspec.Raw()) for i in range(len(others.left))]
    fields += [(f"w{i}", None, None) for i in range(len(others.watched))]  # only a null: no column to fill
    rename = {f"f{i}": c.source for i, c in enumerate(columns)}
    rename.update({f"l{i}": name for i, name in enumerate(others.left)})
    rename.update({f"w{i}": name for i, name in enumerate(others.watched)})
    return msgspec.defstruct("Row", fields, rename=rename, forbid_unknown_fields=not others.any_field, gc=False,
                             kw_only=True)  # an optional field (a default) may come before a required one


def _c_step_writes(columns: Sequence[FastColumn], keys: Sequence[int], summed: Sequence[str], others: Others) -> bool:
    """Whether the C step takes these rows: every column of a kind it writes, keyed (if at
    all) by kinds whose key it forms, no additive columns (their rows stay text for the
    writer to sum), and no jsonb column under SINK_FLATTEN (an object there is split into
    fields, which the C step does not do)."""
    return (all(c.kind in ROW_BINARY_KINDS for c in columns) and not summed
            and all(columns[k].kind in _C_KEY_KINDS for k in keys)
            and (others.objects or all(c.kind != "jsonb" for c in columns)))


def compile_fast_path(columns: Sequence[FastColumn], op: type, op_kind: str, key_columns: Sequence[str] = (),
                      others: Others = ANY_OTHER, zone: tzinfo = UTC, summed: Sequence[str] = (),
                      skip: Callable[[tuple[str, ...]], bool] | None = None) -> FastPath | None:
    """The fast path for `columns`, in table order: it returns `op(op_kind, column names,
    row, key, None)`, the key formed as `RowMapper` forms it; without `key_columns`, the
    row alone, COPY binary or text (`as_op` makes it that Op); `zone` is SINK_TIMEZONE, the
    session's, which reads a timestamp written without an offset; `summed`: columns a
    key's records add up (SINK_ADDITIVE_COLUMNS), whose rows stay text for the writer to
    sum; `skip`: asked by the C step of a record's fields no column takes (see
    _rowbinary.c; without it such a record is the Python function's). None when a field's
    name is one msgspec cannot match (a quote, a backslash or a control character in it)."""
    names = [column.name for column in columns]
    sources = [column.source for column in columns]  # the JSON fields
    if any(_UNMATCHABLE.search(source) for source in [*sources, *others.left, *others.watched]):
        return None
    columns = [c if c.name not in key_columns else c._replace(nullable=False, optional=False) for c in columns]
    row_type = _row_type(columns, others)
    fields = [_Source.of(column, i) for i, column in enumerate(columns)]
    keys = [names.index(k) for k in key_columns]
    lines = _source(columns, fields, keys)
    names_tuple = tuple(names)  # one tuple for every op: the writer groups ops by it
    scope: dict[str, Any] = {"decode": msgspec.json.Decoder(row_type).decode, "from_iso": datetime.fromisoformat,
                             "plain": is_plain_timestamp,
                             # anything msgspec raises (RecursionError on deep nesting too): the general path decides
                             "ERRORS": Exception, "new": tuple.__new__, "escape_row": escape_row, "escape": escape,
                             "NULL": NULL, "NULL_MARK": _NULL_MARK,
                             "op": op, "kind": op_kind, "names": names_tuple, "shapes": {}, "UNSET": msgspec.UNSET,
                             "SEPARATOR": _SEPARATOR, "convert": [c.convert for c in columns]}
    exec("\n".join(lines), scope)
    fast: FastPath = scope["fast"]
    if not _c_step_writes(columns, keys, summed, others):
        return fast
    return RowBinary([(c.source, c.kind, -1 if c.length is None else c.length, c.nullable, c.optional) for c in columns],
                     fast,
                     naive_is_utc=zone is UTC or getattr(zone, "key", None) in _UTC_KEYS,
                     keys=keys, op=(op, op_kind, names_tuple), skip=skip)
