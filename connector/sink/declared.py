"""The column types a value's writer declared, by field, from its registry schema (for
SINK_AUTO_CREATE and SINK_AUTO_EVOLVE: sink/evolution.py): an Avro record schema, a JSON
Schema object, a Protobuf message. Each type is (SQL type, mapping kind); a field the
schema leaves vague (a union of several types, a reference, a nested message) is jsonb.
Pure: the schemas come parsed (connector/formats.py fetches them)."""

from __future__ import annotations

from typing import Any

Declared = dict[str, tuple[str, str]]
JSONB = ("jsonb", "jsonb")
_AVRO = {"boolean": ("boolean", "boolean"), "int": ("integer", "integer"), "long": ("bigint", "bigint"),
         "float": ("real", "real"), "double": ("double precision", "float"), "bytes": ("bytea", "bytea"),
         "fixed": ("bytea", "bytea"), "string": ("text", "text"), "enum": ("text", "text"),
         "date": ("date", "date"), "time-millis": ("time", "time"), "time-micros": ("time", "time"),
         "timestamp-millis": ("timestamptz", "timestamptz"), "timestamp-micros": ("timestamptz", "timestamptz"),
         "local-timestamp-millis": ("timestamp", "timestamp"), "local-timestamp-micros": ("timestamp", "timestamp"),
         "uuid": ("uuid", "uuid")}
_JSON_SCHEMA = {"integer": ("bigint", "bigint"), "number": ("numeric", "numeric"), "boolean": ("boolean", "boolean"),
                "string": ("text", "text")}
_JSON_FORMATS = {"date-time": ("timestamptz", "timestamptz"), "date": ("date", "date"), "time": ("time", "time"),
                 "uuid": ("uuid", "uuid")}
# Protobuf's FieldDescriptor.TYPE_* numbers; 64-bit unsigned ones exceed bigint.
_PROTOBUF = {1: ("double precision", "float"), 2: ("real", "real"), 3: ("bigint", "bigint"), 4: ("numeric", "numeric"),
             5: ("integer", "integer"), 6: ("numeric", "numeric"), 7: ("bigint", "bigint"), 8: ("boolean", "boolean"),
             9: ("text", "text"), 12: ("bytea", "bytea"), 13: ("bigint", "bigint"), 14: ("text", "text"),
             15: ("integer", "integer"), 16: ("bigint", "bigint"), 17: ("integer", "integer"), 18: ("bigint", "bigint")}
_PROTOBUF_MESSAGE = 11


def _array_of(item: tuple[str, str]) -> tuple[str, str]:
    return JSONB if item == JSONB else (f"{item[0]}[]", f"{item[1]}[]")


def avro_types(schema: Any) -> Declared:
    """Each field of an Avro record schema: a union with null is its other branch;
    `decimal` is numeric(p, s); an array of a primitive is its array type; records and
    maps are jsonb."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return {}
    return {field["name"]: _avro_type(field["type"]) for field in schema.get("fields", [])}


def _avro_type(declared: Any) -> tuple[str, str]:
    if isinstance(declared, list):
        branches = [branch for branch in declared if branch != "null"]
        return _avro_type(branches[0]) if len(branches) == 1 else JSONB
    if isinstance(declared, str):
        return _AVRO.get(declared, JSONB)  # a named type: a record, enum or fixed defined before
    logical = declared.get("logicalType")
    if logical == "decimal":
        return f"numeric({int(declared['precision'])}, {int(declared.get('scale', 0))})", "numeric"
    if logical in _AVRO:
        return _AVRO[logical]
    if declared.get("type") == "array":
        return _array_of(_avro_type(declared["items"]))
    return _AVRO.get(declared.get("type"), JSONB)  # a primitive written long-hand, enum, fixed; else a record, map


def json_schema_types(schema: Any) -> Declared:
    """Each property of a JSON Schema object: `integer` bigint, `number` numeric (as
    written), a string of format date-time, date, time or uuid that type (else text),
    `["T", "null"]` as T, an array of one of these its array type; the rest jsonb."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return {}
    return {name: _json_type(declared) for name, declared in schema["properties"].items()}


def _json_type(declared: Any) -> tuple[str, str]:
    if not isinstance(declared, dict):
        return JSONB
    kind = declared.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "string" and declared.get("format") in _JSON_FORMATS:
        return _JSON_FORMATS[declared["format"]]
    if kind == "array":
        return _array_of(_json_type(declared.get("items")))
    return _JSON_SCHEMA.get(kind, JSONB) if isinstance(kind, str) else JSONB


def protobuf_types(message: Any) -> Declared:
    """Each field of a Protobuf message descriptor, by its name in the .proto file (as
    the decoder names it): its scalar type (uint64 and fixed64 numeric), an enum text,
    google.protobuf.Timestamp timestamptz, a map or another message jsonb; a repeated
    field the array of its type."""
    return {field.name: _protobuf_type(field) for field in message.fields}


def _protobuf_type(field: Any) -> tuple[str, str]:
    if field.type != _PROTOBUF_MESSAGE:
        scalar = _PROTOBUF.get(field.type, JSONB)
    elif field.message_type.GetOptions().map_entry:
        return JSONB
    else:
        timestamp = field.message_type.full_name == "google.protobuf.Timestamp"
        scalar = ("timestamptz", "timestamptz") if timestamp else JSONB
    return _array_of(scalar) if field.is_repeated else scalar
