"""Record -> row: a JSON object value becomes the same-named columns of the sink table.

Pure: the table's columns are described once (from reflection) as `ColumnSpec`s, each
with a converter chosen by type; mapping a record is decoding its value and running
the converters of the columns it names. Absent fields are left out (NULL or the
column default on insert); unknown fields are ignored. Anything that cannot be
converted raises MappingError with the record's topic, partition and offset.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, NoReturn

import orjson

from connector.errors import MappingError
from connector.formats import ValueDecoder, decode_json
from connector.state import Record

Converter = Callable[[Any], Any]
INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}


REJECT = "reject"


class Op(NamedTuple):
    """What one record does to the table: `insert` (append mode), `upsert` or `delete`.
    `values` holds the converted columns the record names, in table order. A record
    that cannot be mapped, when errors are tolerated, is a `reject` op whose values are
    `{"error_class": …, "error": …}`: it writes nothing and becomes a dead letter."""

    kind: str
    values: dict[str, Any]


def rejection(error_class: str, message: str) -> Op:
    return Op(REJECT, {"error_class": error_class, "error": message})


def tolerant(mapper: Callable[[Record], Op]) -> Callable[[Record], Op]:
    """ERRORS_TOLERANCE=all: a record that cannot be mapped becomes a `reject` op
    (a dead letter, written in the same commit transaction) instead of stopping."""
    def map_or_reject(record: Record) -> Op:
        try:
            return mapper(record)
        except MappingError as exc:
            return rejection(type(exc).__name__, exc.reason)
    return map_or_reject


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str  # one of the keys of CONVERTERS, or "other"
    nullable: bool = True
    has_default: bool = False
    length: int | None = None  # varchar(n) / char(n)


class _Invalid(ValueError):
    pass


def _int(bits: int) -> Converter:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise _Invalid("a boolean is not an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise _Invalid(f"{value!r} is not a whole number")
            value = int(value)
        elif isinstance(value, str):
            value = int(value.strip())
        elif not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise _Invalid(f"{value} is out of range for a {bits}-bit integer")
        return value

    return convert


def _numeric(value: Any) -> Decimal:
    if isinstance(value, Decimal):  # Avro decimals arrive decoded
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid(f"expected a number, got {type(value).__name__}")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise _Invalid(f"{value!r} is not a number") from None


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Invalid(f"expected a number, got {type(value).__name__}")
    return float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Invalid(f"expected a boolean, got {value!r}")


def _dumps(value: Any) -> str:
    """JSON text of a document, including the native values registry formats decode to."""
    def native(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return str(obj)
        if isinstance(obj, bytes):
            return base64.b64encode(obj).decode()
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")
    return orjson.dumps(value, default=native).decode()


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else _dumps(value)
    if "\x00" in text:
        raise _Invalid("text contains a NUL character, which PostgreSQL cannot store")
    return text


def _epoch_ms(value: Any) -> datetime:
    return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)


def _timestamptz(value: Any) -> datetime:
    if isinstance(value, datetime):  # Avro timestamps arrive decoded
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch_ms(value)
    if not isinstance(value, str):
        raise _Invalid(f"expected an ISO-8601 string or epoch milliseconds, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _timestamp(value: Any) -> datetime:
    parsed = _timestamptz(value)
    return parsed.astimezone(timezone.utc).replace(tzinfo=None)


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise _Invalid(f"expected an ISO-8601 date string, got {type(value).__name__}")
    return date.fromisoformat(value.strip())


def _time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str):
        raise _Invalid(f"expected an ISO-8601 time string, got {type(value).__name__}")
    return time.fromisoformat(value.strip())


def _json(value: Any) -> str:
    return _dumps(value)


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise _Invalid(f"expected a UUID string, got {type(value).__name__}")
    return uuid.UUID(value)


def _bytea(value: Any) -> bytes:
    if isinstance(value, bytes):  # Avro and registry formats decode bytes as bytes
        return value
    if not isinstance(value, str):
        raise _Invalid(f"expected base64 text, got {type(value).__name__}")
    return base64.b64decode(value, validate=True)


def _other(value: Any) -> str:
    """Types without a converter here: sent as text and parsed by PostgreSQL."""
    return _text(value)


CONVERTERS: dict[str, Converter] = {
    **{kind: _int(bits) for kind, bits in INT_BITS.items()},
    "numeric": _numeric,
    "float": _float,
    "boolean": _bool,
    "text": _text,
    "timestamptz": _timestamptz,
    "timestamp": _timestamp,
    "date": _date,
    "time": _time,
    "json": _json,
    "uuid": _uuid,
    "bytea": _bytea,
    "other": _other,
}


def column_converter(spec: ColumnSpec) -> Converter:
    base = CONVERTERS[spec.kind]
    limit = spec.length
    if limit is None:
        return base

    def bounded(value: Any) -> Any:
        text = base(value)
        if len(text) > limit:
            raise _Invalid(f"{len(text)} characters exceed the column's length {limit}")
        return text

    return bounded


def metadata_value(record: Record, field: str) -> Any:
    """A record's metadata as a JSON-like value the column converters take: the
    timestamp as epoch milliseconds; headers as an object of UTF-8 text values (a value
    that is not UTF-8 as base64; a name given more than once: a list of its values)."""
    if field == "topic":
        return record.topic
    if field == "partition":
        return record.partition
    if field == "offset":
        return record.offset
    if field == "timestamp":
        return record.timestamp_ms
    headers: dict[str, Any] = {}
    for name, raw in record.headers:
        try:
            value = None if raw is None else raw.decode("utf-8")
        except UnicodeDecodeError:
            value = base64.b64encode(raw).decode()
        if name in headers:
            earlier = headers[name]
            headers[name] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
        else:
            headers[name] = value
    return headers


class RowMapper:
    """Maps records to `Op`s for one table and mode. `key_columns` is required (and
    only used) in upsert mode."""

    def __init__(self, columns: Sequence[ColumnSpec], mode: str, key_columns: Sequence[str] = (),
                 metadata: Sequence[tuple[str, str]] = (), decode_value: ValueDecoder = decode_json) -> None:
        self.columns = tuple(columns)
        self._decode_value = decode_value
        self.mode = mode
        self.key_columns = tuple(key_columns)
        by_name = {c.name: c for c in self.columns}
        # Record metadata (SINK_METADATA_COLUMNS): (field, column, converter); these
        # columns take the record's metadata, never a same-named field of its value.
        self._metadata = [(field, column, column_converter(by_name[column])) for field, column in metadata]
        meta_columns = {column for _, column, _ in self._metadata}
        self._converters = [(c.name, column_converter(c)) for c in self.columns if c.name not in meta_columns]
        self._not_null = frozenset(c.name for c in self.columns if not c.nullable)
        self._required = tuple(c.name for c in self.columns if not c.nullable and not c.has_default)

    def __call__(self, record: Record) -> Op:
        if record.value is None:
            if self.mode != "upsert":
                raise MappingError(record.topic, record.partition, record.offset,
                                   "null value (tombstone) in append mode")
            return Op("delete", self._key_from_record_key(record))
        try:
            document = self._decode_value(record.topic, record.value)
        except ValueError as exc:
            self._fail(record, str(exc))
        if not isinstance(document, dict):
            self._fail(record, f"value is a JSON {type(document).__name__}, expected an object")
        values = self._convert(record, document)
        for field, column, convert in self._metadata:
            raw = metadata_value(record, field)
            try:
                values[column] = None if raw is None else convert(raw)
            except (ValueError, TypeError, OverflowError) as exc:
                self._fail(record, f"record {field} into column {column!r}: {exc}")
        if self.mode == "upsert":
            missing = [k for k in self.key_columns if values.get(k) is None]
            if missing:
                values.update(self._key_from_record_key(record, missing))
        absent = [name for name in self._required if name not in values]
        if absent:
            self._fail(record, f"no value for NOT NULL column(s) {', '.join(absent)}")
        return Op("upsert" if self.mode == "upsert" else "insert", values)

    def _convert(self, record: Record, document: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, convert in self._converters:
            if name not in document:
                continue
            raw = document[name]
            if raw is None:
                if name in self._not_null:
                    self._fail(record, f"field {name!r} is null but the column is NOT NULL")
                values[name] = None
                continue
            try:
                values[name] = convert(raw)
            except (ValueError, TypeError, OverflowError) as exc:
                self._fail(record, f"field {name!r}: {exc}")
        return values

    def _key_from_record_key(self, record: Record, wanted: Sequence[str] | None = None) -> dict[str, Any]:
        wanted = tuple(wanted or self.key_columns)
        raw = record.key
        if raw is None:
            self._fail(record, f"no value for key column(s) {', '.join(wanted)} in the value or the record key")
        key: Any
        try:
            key = orjson.loads(raw)
        except orjson.JSONDecodeError:
            key = self._decode_text(record, raw)
        if not isinstance(key, dict):
            if len(self.key_columns) != 1:
                self._fail(record, f"a scalar record key cannot fill key columns {', '.join(self.key_columns)}")
            key = {self.key_columns[0]: key}
        values = self._convert(record, {k: key.get(k) for k in wanted if k in key})
        absent = [k for k in wanted if values.get(k) is None]
        if absent:
            self._fail(record, f"no value for key column(s) {', '.join(absent)}")
        return values

    def _decode_text(self, record: Record, payload: bytes) -> str:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(record, "record key is neither JSON nor UTF-8 text")

    @staticmethod
    def _fail(record: Record, reason: str) -> NoReturn:
        raise MappingError(record.topic, record.partition, record.offset, reason)
