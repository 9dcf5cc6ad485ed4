"""The common record's row, without a Python call per column. Pure.

Most records of a stream have one shape: a JSON object naming every value column with
the type its column expects. For such a table this module builds a msgspec Struct type
whose fields are the columns, each typed as its column expects (a bigint's range, a
varchar's length), and compiles one function around it: msgspec decodes and checks the
value in C, and the function formats the row's COPY text with the column loop unrolled
(a Python call per column is most of the cost of mapping a record at several hundred
thousand a second).

The function returns None for anything else (a field absent or null, another type, a
value that fails to parse, a `\u0000`, any error decoding it): the general path in
`RowMapper` then maps the record, and raises its MappingError when there is one. So the
fast path decides nothing on its own: it agrees with the general path wherever it
answers, which `tests/unit/test_fastpath.py` checks on arbitrary records.

Text as users have it takes the fast path too. A JSON document without a backslash has
no character COPY treats specially in any string, so its row is sent as formatted. One
with a backslash (any JSON escape: `\"`, `\\`, `\t`, `\n`, `\u00e9`) is formatted with
NUL between its fields and escaped for COPY in bulk: four `str.replace` calls over the
whole row, then NUL becomes the tab between fields. No text holds a NUL by then: a
document with `\u0000` in it is the general path's (PostgreSQL stores no NUL).

Both read a `numeric` column's JSON number exactly, as written (msgspec decodes it
into a Decimal; the general path reads such a document again exactly), and a number
beyond a double's range anywhere in a document (`1e400`) is read exactly by both.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from connector.sink.copytext import ESCAPED, INT_BITS, PLAIN_TIMESTAMP, Converter, escape

FastPath = Callable[[bytes | None], Any]  # value -> the op (or its row text), or None (a null value too)
_UNMATCHABLE = re.compile(r'["\\\x00-\x1f]')
# Kinds whose converter takes the JSON string itself: the field is typed `str`.
_STRING_KINDS = frozenset({"timestamp", "date", "time", "uuid", "bytea"})


def escape_row(fields: str) -> str:
    """Fields joined by NUL, none holding one, as a COPY text row: escaped, tab-separated."""
    return (fields.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\x00", "\t") + "\n")


def _field_type(kind: str, length: int | None) -> Any:
    """The msgspec type of a column's field: what the fast path's code below expects."""
    if kind in INT_BITS:
        bits = INT_BITS[kind]
        return Annotated[int, msgspec.Meta(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1)]
    if kind == "text" and length is not None:
        return Annotated[str, msgspec.Meta(max_length=length)]
    if kind in ("text", "timestamptz") or kind in _STRING_KINDS:
        return str
    if kind == "numeric":
        return Decimal  # the number as written (a string holding one too, as the general path takes it)
    if kind == "float":
        return float
    if kind == "boolean":
        return bool
    return Any  # json, other: any JSON value (null checked below)


def _field(kind: str, i: int) -> tuple[str, str]:
    """Python source that checks field `row.f{i}` (returning None where the fast path
    defers), and the expression of its COPY text."""
    if kind == "numeric":  # str() of the Decimal; sNaN is no number PostgreSQL stores
        return f"if row.f{i}.is_snan(): return None", f"row.f{i}"
    if kind in INT_BITS or kind in ("float", "text"):
        return "", f"row.f{i}"  # the f-string formats it: str() of an int, repr() of a float
    if kind == "boolean":
        return "", f'("t" if row.f{i} else "f")'
    if kind == "timestamptz":  # sent as written when plain (copytext.PLAIN_TIMESTAMP); parsed to validate
        return f"v{i} = row.f{i}\nif plain(v{i}) is None: return None\nfrom_iso(v{i})", f"v{i}"
    return f"v{i} = row.f{i}\nif v{i} is None: return None\nv{i} = convert[{i}](v{i})", f"v{i}"


def _unescaped(kind: str, text: str) -> str:
    """A field's text before the bulk escape: bytea's converter gives its backslash
    escaped already (`\\\\x…`), which the bulk escape would double."""
    return f"{text}[1:]" if kind == "bytea" else text


def _returns(kinds: Sequence[str], texts: Sequence[str], keys: Sequence[int]) -> list[str]:
    """The fast path's last lines: the row (and key) of a value without a backslash as
    formatted, of one with a backslash escaped in bulk."""
    lines = []
    if any(kind in ESCAPED for kind in kinds):  # a backslash-free value needs no escaping
        fields = "\\x00".join(f"{{{_unescaped(kind, text)}}}" for kind, text in zip(kinds, texts, strict=True))
        lines += [" if b'\\\\' in value:", "  if b'\\\\u0000' in value: return None",
                  f"  line = escape_row(f'{fields}')"]
        key = "".join(f"escape(str({texts[k]})), " if kinds[k] in ESCAPED else f"str({texts[k]}), " for k in keys)
        lines.append(f"  return new(op, (kind, names, line, ({key}), None))" if keys else "  return line")
    row = "\\t".join(f"{{{text}}}" for text in texts) + "\\n"
    if not keys:
        return [*lines, f" return f'{row}'"]
    key = "".join(f"str({texts[k]}), " for k in keys)  # a key is its columns' COPY text, as RowMapper gives it
    return [*lines, f" return new(op, (kind, names, f'{row}', ({key}), None))"]


def compile_fast_path(columns: Sequence[tuple[str, str, int | None, Converter]], op: type, op_kind: str,
                      key_columns: Sequence[str] = ()) -> FastPath | None:
    """The fast path for (name, kind, length, converter) columns, in table order: it
    returns `op(op_kind, column names, row, key, None)`, the key formed as `RowMapper`
    forms it; without `key_columns`, the row text alone (`as_op` makes it that Op).
    None when a column's name is one msgspec
    cannot match (a quote, a backslash or a control character in it)."""
    names = [name for name, _, _, _ in columns]
    if any(_UNMATCHABLE.search(name) for name in names):
        return None
    kinds = [kind for _, kind, _, _ in columns]
    # Fields are named f0, f1, …: column names reach the generated code only through `rename`.
    # gc=False: a decoded row holds no reference cycle, and untracked it costs the
    # collector nothing (a poll batch makes thousands).
    row_type = msgspec.defstruct("Row", [(f"f{i}", _field_type(kind, length))
                                         for i, (_, kind, length, _) in enumerate(columns)],
                                 rename={f"f{i}": name for i, name in enumerate(names)}, gc=False)
    lines = ["def fast(value):", " try:", "  row = decode(value)", " except ERRORS: return None"]
    checks, texts = zip(*(_field(kind, i) for i, kind in enumerate(kinds)), strict=True)
    lines += [" try:", *("  " + line for check in checks for line in check.splitlines()), "  pass",
              " except (ValueError, TypeError, OverflowError): return None"]
    lines += _returns(kinds, texts, [names.index(k) for k in key_columns])
    scope: dict[str, Any] = {"decode": msgspec.json.Decoder(row_type).decode, "from_iso": datetime.fromisoformat,
                             "plain": PLAIN_TIMESTAMP.fullmatch,
                             # anything msgspec raises (RecursionError on deep nesting too): the general path decides
                             "ERRORS": Exception, "new": tuple.__new__,
                             "escape_row": escape_row, "escape": escape,
                             "op": op, "kind": op_kind, "names": tuple(names),
                             "convert": [c for _, _, _, c in columns]}
    exec("\n".join(lines), scope)
    fast: FastPath = scope["fast"]
    return fast
