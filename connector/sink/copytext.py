"""Values to PostgreSQL's COPY text format, one column type at a time. Pure.

A converter takes a decoded value (JSON, or what a registry format decodes to) and
returns the column's text as COPY reads it, or raises ValueError/TypeError naming what
is wrong. Converters validate with Python's own C parsers and, where their text is
already canonical, send it as it came: rendering a parsed datetime back to text costs
ten times what parsing it does.

Text-like kinds (`ESCAPED`) return raw text, which the row builder escapes unless the
record cannot contain a character COPY treats specially: a JSON document without a
backslash has no tab, newline, carriage return, backslash or NUL in any string (JSON
must escape them). Every other kind returns text that never needs escaping.

The commit transaction sets `TimeZone` to SINK_TIMEZONE (UTC by default), so a timestamp
without an offset is that zone's wall time: into `timestamptz` it goes as written and
PostgreSQL reads it so; into `timestamp` one with an offset (or epoch milliseconds)
becomes the zone's wall time here, as PostgreSQL casts a timestamptz to timestamp.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from connector.sink.arrays import element_kind, is_array, literal_converter

Converter = Callable[[Any], str]
INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
ESCAPED = frozenset({"text", "varchar", "json", "jsonb", "other"})  # kinds whose text may need escaping
NULL = "\\N"
_UNESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"t": "\t", "n": "\n", "r": "\r"}
_from_iso = datetime.fromisoformat
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Invalid(ValueError):
    pass


# `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]][Z|±HH[[:]MM]]`: the extended ISO-8601 form PostgreSQL
# reads as Python does, sent as written. Other forms Python accepts (a comma before the
# fraction, week dates, the basic form) are rendered anew, so PostgreSQL never refuses
# what the mapping accepted.
PLAIN_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?")


def is_plain_timestamp(text: str) -> bool:
    """Whether PLAIN_TIMESTAMP matches `text`, a text Python's ISO-8601 parser took (call
    it first): that parse leaves only the shape to check, by position here at a fifth of
    the regex's cost. tests/unit/test_plain_timestamp.py checks the two agree."""
    if (len(text) < 16 or text[4] != "-" or text[7] != "-" or text[10] not in "T " or text[13] != ":"
            or "," in text or "\x00" in text):  # a comma before the fraction; a trailing NUL the parser ignores
        return False
    dot = text.find(".")
    if dot != -1 and (dot != 19 or text[16] != ":" or not text[20:21].isdigit()):  # seconds' digits, never minutes'
        return False
    if text[-1] == "Z":
        return True
    sign = max(text.rfind("+"), text.rfind("-", 16))  # an offset: ±HH, ±HHMM or ±HH:MM, not seconds
    return sign < 0 or len(text) - sign in (3, 5, 6)


def _iso_text(value: str) -> str:
    """Text for an ISO-8601 parse: Python's parser ignores a trailing NUL, PostgreSQL refuses it."""
    text = value.strip()
    if not text.isprintable():
        raise Invalid(f"{value!r} holds a control character")
    return text


def escape(text: str) -> str:
    """`text` as a COPY text field: backslash first, then tab, newline and carriage return.
    Four `str.replace` calls: each a scan in C, where `str.translate` takes a Python-level
    step per character of non-ASCII text."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def parse_row(row: str) -> list[str | None]:
    """A COPY text row back into its fields (unescaped; None for NULL)."""
    return [None if f == NULL else _UNESCAPE.sub(lambda m: _UNESCAPED.get(m[1], m[1]), f)
            for f in row.rstrip("\n").split("\t")]


def render_row(fields: list[str | None]) -> str:
    """Unescaped fields (None for NULL) as a COPY text row."""
    return "\t".join(NULL if f is None else escape(f) for f in fields) + "\n"


def _int(bits: int) -> Converter:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def convert(value: Any) -> str:
        if type(value) is not int:
            if isinstance(value, bool):
                raise Invalid("a boolean is not an integer")
            if isinstance(value, float):
                if not value.is_integer():
                    raise Invalid(f"{value!r} is not a whole number")
                value = int(value)
            elif isinstance(value, str):
                value = int(value.strip())
            elif isinstance(value, Decimal):
                if value != value.to_integral_value():
                    raise Invalid(f"{value} is not a whole number")
                value = int(value)
            elif not isinstance(value, int):
                raise Invalid(f"expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise Invalid(f"{value} is out of range for a {bits}-bit integer")
        return str(value)

    return convert


def _special_float(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _numeric(value: Any) -> str:
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else _special_float(value)
    if isinstance(value, Decimal):  # Avro decimals, and exact JSON numbers, arrive decoded
        number = value
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid(f"expected a number, got {type(value).__name__}")
    else:
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise Invalid(f"{value!r} is not a number") from None
    if number.is_snan():
        raise Invalid("sNaN is not a number PostgreSQL stores")
    return str(number)


def _float(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise Invalid(f"expected a number, got {type(value).__name__}")
    number = float(value)
    return repr(number) if math.isfinite(number) else _special_float(number)


def _bool(value: Any) -> str:
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "t" if value.strip().lower() == "true" else "f"
    raise Invalid(f"expected a boolean, got {value!r}")


def dumps(value: Any) -> str:
    """JSON text of a document, including the native values registry formats decode to."""
    def native(obj: Any) -> Any:
        if isinstance(obj, Decimal):  # an exact JSON number stays the number it was
            return orjson.Fragment(str(obj)) if obj.is_finite() else str(obj)
        if isinstance(obj, bytes):
            return base64.b64encode(obj).decode()
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")
    return orjson.dumps(value, default=native).decode()


def _text(value: Any) -> str:
    kind = type(value)
    text = value if kind is str else str(value) if kind is int or kind is Decimal else dumps(value)
    if "\x00" in text:
        raise Invalid("text contains a NUL character, which PostgreSQL cannot store")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate (\ud800 decoded by a lenient decoder)
            raise Invalid(f"text is not valid Unicode: {exc.reason} at character {exc.start}") from None
    return text


def parse_timestamptz(value: Any, zone: tzinfo = UTC) -> datetime:
    """An aware datetime: ISO-8601 text, a datetime or epoch milliseconds; no offset
    means `zone` (SINK_TIMEZONE)."""
    if isinstance(value, datetime):  # Avro timestamps arrive decoded
        parsed = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):  # exact (a double's seconds lose µs past ~2255)
        return _UNIX_EPOCH + timedelta(milliseconds=value)
    elif isinstance(value, str):
        parsed = _from_iso(_iso_text(value))
    else:
        raise Invalid(f"expected an ISO-8601 string or epoch milliseconds, got {type(value).__name__}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _timestamptz(value: Any) -> str:
    if type(value) is str:
        text = _iso_text(value)
        parsed = _from_iso(text)  # validates; the text goes as it came when PostgreSQL reads it alike
        if is_plain_timestamp(text):
            return text
        return parsed.isoformat()  # no offset: the transaction's TimeZone (SINK_TIMEZONE) reads it
    if isinstance(value, datetime) and value.tzinfo is None:  # a registry format's local timestamp: alike
        return value.isoformat()
    return parse_timestamptz(value).isoformat()


def parse_timestamp(value: Any, zone: tzinfo = UTC) -> datetime:
    """A naive datetime, the wall time in `zone` (SINK_TIMEZONE): an offset, when given,
    is applied first (as PostgreSQL casts a timestamptz to timestamp)."""
    return parse_timestamptz(value, zone).astimezone(zone).replace(tzinfo=None)


def _timestamp(value: Any, zone: tzinfo = UTC) -> str:
    if type(value) is str:
        text = _iso_text(value)
        parsed = _from_iso(text)
        # Naive, or UTC in UTC: sent as written (PostgreSQL drops a zero offset).
        if is_plain_timestamp(text) and (parsed.tzinfo is None or (zone is UTC and not parsed.utcoffset())):
            return text
    return parse_timestamp(value, zone).isoformat()


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise Invalid(f"expected an ISO-8601 date string, got {type(value).__name__}")
    return date.fromisoformat(_iso_text(value))


def parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str):
        raise Invalid(f"expected an ISO-8601 time string, got {type(value).__name__}")
    return time.fromisoformat(_iso_text(value))


def _uuid(value: Any) -> str:
    if type(value) is str and _CANONICAL_UUID.fullmatch(value):  # as str(UUID) writes it: sent as it came
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise Invalid(f"expected a UUID string, got {type(value).__name__}")
    return str(uuid.UUID(value))


def _bytea(value: Any) -> str:
    if isinstance(value, bytes):  # Avro and registry formats decode bytes as bytes
        data = value
    elif isinstance(value, str):
        data = base64.b64decode(value, validate=True)
    else:
        raise Invalid(f"expected base64 text, got {type(value).__name__}")
    return "\\\\x" + data.hex()  # bytea's hex form, its backslash escaped for COPY


CONVERTERS: dict[str, Converter] = {
    **{kind: _int(bits) for kind, bits in INT_BITS.items()},
    "numeric": _numeric,
    "float": _float,
    "real": _float,  # float4: PostgreSQL rounds the double's text
    "boolean": _bool,
    "text": _text, "varchar": _text,  # varchar: an array's elements (varchar(n)[], char(n)[]), unbounded
    "timestamptz": _timestamptz,
    "timestamp": _timestamp,
    "date": lambda value: parse_date(value).isoformat(),
    "time": lambda value: parse_time(value).isoformat(),
    "json": dumps, "jsonb": dumps,  # jsonb apart: the C step writes it (sink/_rowbinary.c)
    "uuid": _uuid,
    "bytea": _bytea,
    "other": _text,  # types without a converter here: sent as text, parsed by PostgreSQL
}

def column_converter(kind: str, length: int | None, zone: tzinfo = UTC) -> Converter:
    """The converter of a column of `kind` (`length`: varchar(n)); `zone` is the wall
    clock a `timestamp` column keeps (SINK_TIMEZONE). An array kind's gives the literal
    unescaped (sink/arrays.py)."""
    if is_array(kind):
        return literal_converter(column_converter(element_kind(kind), None, zone), element_kind(kind))
    base = CONVERTERS[kind] if kind != "timestamp" or zone is UTC else functools.partial(_timestamp, zone=zone)
    if length is None:
        return base

    def bounded(value: Any) -> str:
        text = base(value)
        if len(text) > length:
            raise Invalid(f"{len(text)} characters exceed the column's length {length}")
        return text

    return bounded
