"""Rows as PostgreSQL reads them, for tests: a COPY binary tuple (the fast path's C step)
and a COPY text row (the Python paths) turned into comparable values, column by column.
Text is read the way PostgreSQL's input functions read it (a real through strtof, a
numeric's scale from its digits), so equal values mean the database stores the same."""

from __future__ import annotations

import ctypes
import json
import math
import struct
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from connector.sink.copytext import parse_row
from connector.sink.mapping import Op

_strtof = ctypes.CDLL(None).strtof
_strtof.restype, _strtof.argtypes = ctypes.c_float, [ctypes.c_char_p, ctypes.c_void_p]
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_INTS = {2: "!h", 4: "!i", 8: "!q"}


def _float_key(value: float) -> Any:
    return ("float", math.copysign(1.0, value), abs(value))  # -0.0 and 0.0 apart


def _numeric_key(value: Decimal) -> Any:
    return ("numeric", value, max(0, -int(value.as_tuple().exponent)))  # the value and its scale


def _binary_numeric(data: bytes) -> Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHH", data)
    digits = struct.unpack_from(f"!{ndigits}H", data, 8)
    assert all(d < 10000 for d in digits) and sign in (0, 0x4000) and (ndigits == 0 or (digits[0] and digits[-1]))
    total = 0
    for d in digits:
        total = total * 10000 + d
    with localcontext(prec=4 * ndigits + dscale + 8):  # exact
        value = Decimal(total).scaleb(4 * (weight - ndigits + 1)) if ndigits else Decimal(0)
        value = -value if sign else value
        return value.quantize(Decimal(1).scaleb(-dscale))


def binary_values(row: bytes, kinds: Sequence[str]) -> list[Any]:
    """A COPY binary tuple's fields as comparable values; AssertionError when malformed."""
    (count,) = struct.unpack_from("!h", row)
    assert count == len(kinds), (count, kinds)
    position, values = 2, []
    for kind in kinds:
        (length,) = struct.unpack_from("!i", row, position)
        position += 4
        if length == -1:
            values.append(None)
            continue
        data = row[position:position + length]
        position += length
        values.append(_binary_value(kind, data))
    assert position == len(row), "bytes after the last field"
    return values


def _jsonb_key(text: str) -> Any:
    """A JSON document as jsonb keeps it: numbers exactly, with their scale, as numeric
    reads them; an object's keys unordered, the last of a key given twice."""
    def number(text: str) -> Any:
        return _numeric_key(Decimal(text))
    return json.loads(text, parse_float=number, parse_int=number, parse_constant=float)


def _binary_text_array(data: bytes) -> list[str | None]:
    """A text[]'s binary form (one dimension, or none when empty) as its elements."""
    ndim, _, oid = struct.unpack_from("!iii", data)
    assert oid == 25 and ndim in (0, 1), (ndim, oid)
    if ndim == 0:
        assert len(data) == 12
        return []
    count, lower = struct.unpack_from("!ii", data, 12)
    assert lower == 1
    position, items = 20, []
    for _ in range(count):
        (length,) = struct.unpack_from("!i", data, position)
        position += 4
        items.append(None if length == -1 else data[position:position + length].decode())
        position += max(length, 0)
    assert position == len(data), "bytes after the last element"
    return items


def _text_array(text: str) -> list[str | None]:
    """A one-dimensional array literal as the Python path writes it (each element quoted,
    or NULL) read as PostgreSQL reads it."""
    assert text[0] == "{" and text[-1] == "}", text
    items: list[str | None] = []
    i = 1
    while i < len(text) - 1:
        if text.startswith("NULL", i):
            items.append(None)
            i += 4
        else:
            assert text[i] == '"', text
            i, chars = i + 1, []
            while text[i] != '"':
                i += text[i] == "\\"
                chars.append(text[i])
                i += 1
            items.append("".join(chars))
            i += 1
        i += text[i] == ","
    return items


def _binary_value(kind: str, data: bytes) -> Any:
    if kind in ("smallint", "integer", "bigint"):
        return struct.unpack(_INTS[len(data)], data)[0]
    if kind == "numeric":
        return _numeric_key(_binary_numeric(data))
    if kind in ("float", "real"):
        return _float_key(struct.unpack("!d" if kind == "float" else "!f", data)[0])
    if kind == "boolean":
        return {b"\x01": True, b"\x00": False}[data]
    if kind == "text":
        return data.decode()
    if kind == "jsonb":
        assert data[:1] == b"\x01", data  # jsonb's binary format: version 1, then the text
        return _jsonb_key(data[1:].decode())
    if kind == "text[]":
        return _binary_text_array(data)
    if kind in ("timestamptz", "timestamp"):  # microseconds from 2000-01-01 (UTC): before year 1 too
        return struct.unpack("!q", data)[0]
    if kind == "date":
        return date(2000, 1, 1) + timedelta(days=struct.unpack("!i", data)[0])
    assert kind == "uuid", kind
    return uuid.UUID(bytes=data)


def text_values(row: str, kinds: Sequence[str]) -> list[Any]:
    """A COPY text row's fields as PostgreSQL's input functions read them, comparable."""
    fields = parse_row(row)
    assert len(fields) == len(kinds), (fields, kinds)
    return [None if f is None else _text_value(kind, f) for kind, f in zip(kinds, fields, strict=True)]


def _text_value(kind: str, text: str) -> Any:
    if kind in ("smallint", "integer", "bigint"):
        return int(text)
    if kind == "numeric":
        return _numeric_key(Decimal(text))
    if kind == "float":
        return _float_key(float(text))
    if kind == "real":
        return _float_key(_strtof(text.encode(), None))
    if kind == "boolean":
        return {"t": True, "f": False}[text]
    if kind == "text":
        return text
    if kind == "jsonb":
        return _jsonb_key(text)
    if kind == "text[]":
        return _text_array(text)
    if kind == "timestamptz":
        parsed = datetime.fromisoformat(text)  # without an offset: the session's TimeZone, UTC in these tests
        return (parsed.replace(tzinfo=parsed.tzinfo or UTC) - _EPOCH) // timedelta(microseconds=1)
    if kind == "timestamp":  # PostgreSQL's timestamp input ignores an offset: the wall time as written
        return (datetime.fromisoformat(text).replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
    if kind == "date":
        return date.fromisoformat(text)
    assert kind == "uuid", kind
    return uuid.UUID(text)


def row_values(row: str | bytes, kinds: Sequence[str]) -> list[Any]:
    """Either kind of row, as comparable values."""
    return binary_values(row, kinds) if isinstance(row, bytes) else text_values(row, kinds)


def same_effect(a: Op, b: Op, kinds: Mapping[str, str]) -> bool:
    """Whether two ops do the same to the table: alike but for their rows' format, and the
    values PostgreSQL reads from their rows equal (`kinds`: each column's kind)."""
    if isinstance(a.row, str) and isinstance(b.row, str):
        return a == b
    columns = [kinds[c] for c in a.columns]
    return a._replace(row="") == b._replace(row="") and row_values(a.row, columns) == row_values(b.row, columns)
