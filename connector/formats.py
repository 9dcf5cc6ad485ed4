"""Record values as documents (VALUE_FORMAT): JSON, or a Schema Registry format.

- `json` (default): the value is a JSON object, decoded with orjson.
- `avro`, `json-schema`, `protobuf`: the value carries Confluent's Schema Registry framing
  (a schema ID, or a schema GUID in a header); the writer's schema is fetched from
  SCHEMA_REGISTRY_URL (cached per process) and the value decoded to a document:
  Avro and JSON Schema through confluent-kafka's deserializers; Protobuf dynamically from
  the writer's schema (a generic sink has no generated message class), fields named as in
  the .proto file, default values included, 64-bit integers as numbers.

The document then maps to columns by name exactly as a JSON object does. A value that
is not framed, names an unknown schema or does not decode raises `ValueError` with the
reason (the mapping turns it into a MappingError naming the record: a stop, or a dead
letter). A registry that cannot be reached is not the record's fault: it raises
`RegistryUnavailable`, which stops the replica (a restart resumes exactly).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from connector.errors import ConfigError, ConnectorError

ValueDecoder = Callable[[str, bytes], Any]  # (topic, value bytes) -> document
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class RegistryUnavailable(ConnectorError):
    """The Schema Registry could not be asked (network, authentication, server error)."""


def decode_json(topic: str, payload: bytes) -> Any:
    """A JSON value; numbers orjson cannot hold (beyond a double's range) are read exactly
    instead (RowMapper reads a numeric column's number exactly in any case)."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        refused = exc
    try:
        return exact_json(payload)
    except Exception:  # not JSON at all (or nested past any decoder's depth): orjson's reason
        raise ValueError(f"value is not valid JSON: {refused}") from None


_EXACT = msgspec.json.Decoder(float_hook=Decimal)


def exact_json(raw: bytes) -> Any:
    """JSON with its numbers exact: decimals as Decimal (`2.10` stays `2.10`), integers of
    any size as int (msgspec, in C: a general-path record with a numeric column is read
    twice, so this must be cheap); NaN and Infinity, which JSON lacks, refused."""
    return _EXACT.decode(raw)


def registry_client(config: Mapping[str, Any]) -> Any:
    """One client per registry URL and process (its schema cache is shared); `mock://`
    URLs give confluent-kafka's in-memory registry."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    with _clients_lock:
        url = str(config["url"])
        if url not in _clients:
            try:
                _clients[url] = SchemaRegistryClient.new_client(dict(config))
            except (ValueError, TypeError) as exc:  # the client refuses its settings: name them, exit 2
                raise ConfigError([f"SCHEMA_REGISTRY_*: the registry client refuses these settings: {exc}"]) from None
        return _clients[url]


def value_decoder(fmt: str, registry_config: Mapping[str, Any] | None) -> ValueDecoder:
    if fmt == "json":
        return decode_json
    assert registry_config is not None, "SCHEMA_REGISTRY_URL is checked by the settings"
    return RegistryDecoder(fmt, registry_client(registry_config))


def decode_json_key(topic: str, payload: bytes) -> Any:
    """KEY_FORMAT=json: a JSON key (numbers as written: `2.10` filling a text key stays
    `2.10`), else the key as UTF-8 text."""
    try:
        return exact_json(payload)
    except ValueError:
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("neither JSON nor UTF-8 text") from None


def key_decoder(fmt: str, registry_config: Mapping[str, Any] | None) -> ValueDecoder:
    """KEY_FORMAT's decoder of record keys."""
    if fmt == "json":
        return decode_json_key
    assert registry_config is not None, "SCHEMA_REGISTRY_URL is checked by the settings"
    return RegistryDecoder(fmt, registry_client(registry_config), "key")


class RegistryDecoder:
    """Decodes Schema Registry framed values (or keys, `part`) of one format."""

    def __init__(self, fmt: str, client: Any, part: str = "value") -> None:
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer

        self.format, self._client, self._part = fmt, client, part
        if fmt == "avro":
            self._deserialize: Callable[[bytes, Any], Any] = AvroDeserializer(client)
        elif fmt == "json-schema":
            self._deserialize = JSONDeserializer(None, schema_registry_client=client)
        else:
            self._deserialize = ProtobufDecoder(client)

    def declared_types(self, topic: str, payload: bytes) -> dict[str, tuple[str, str]]:
        """The column types the writer's schema declares for a value's fields
        (sink/declared.py), for SINK_AUTO_CREATE to type columns by. Call it after the
        value decoded: its schema is in the client's cache then."""
        from connector.sink.declared import avro_types, json_schema_types, protobuf_types

        if isinstance(self._deserialize, ProtobufDecoder):
            return protobuf_types(self._deserialize.descriptor(payload, topic))
        if len(payload) < 5 or payload[0] != 0:  # framed by a GUID header: typed by value
            return {}
        schema = orjson.loads(self._client.get_schema(int.from_bytes(payload[1:5], "big")).schema_str)
        return avro_types(schema) if self.format == "avro" else json_schema_types(schema)

    def __call__(self, topic: str, payload: bytes) -> Any:
        from confluent_kafka.schema_registry import SchemaRegistryError
        from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

        try:
            field = MessageField.KEY if self._part == "key" else MessageField.VALUE
            return self._deserialize(payload, SerializationContext(topic, field))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise ValueError(f"{self._part}'s schema is not in the registry: {exc.error_message}") from None
            raise RegistryUnavailable(f"Schema Registry: {exc}") from exc
        except (SerializationError, ValueError, TypeError, KeyError, IndexError, EOFError) as exc:
            raise ValueError(f"{self._part} is not {self.format}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise RegistryUnavailable(f"Schema Registry: {exc}") from exc
        except Exception as exc:  # the registry client's HTTP errors (httpx) carry no common base
            if type(exc).__module__.startswith(("httpx", "httpcore", "authlib")):
                raise RegistryUnavailable(f"Schema Registry: {type(exc).__name__}: {exc}") from exc
            raise


class ProtobufDecoder:
    """A framed Protobuf value to a dict, from the writer's schema alone."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._classes: dict[tuple[int | str, tuple[int, ...]], Any] = {}

    def __call__(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        from confluent_kafka.schema_registry import dual_schema_id_deserializer
        from confluent_kafka.schema_registry.common.serde import SchemaId
        from google.protobuf import json_format

        schema_id = SchemaId("PROTOBUF")
        body = dual_schema_id_deserializer(payload, ctx, schema_id)
        message = self._message_class(schema_id)()
        message.ParseFromString(body.read() if isinstance(body, io.BytesIO) else body)
        document: dict[str, Any] = json_format.MessageToDict(
            message, preserving_proto_field_name=True, unquote_int64_if_possible=True,
            always_print_fields_with_no_presence=True)
        return document

    def descriptor(self, payload: bytes, topic: str) -> Any:
        """The descriptor of the message type a framed value holds."""
        from confluent_kafka.schema_registry import dual_schema_id_deserializer
        from confluent_kafka.schema_registry.common.serde import SchemaId
        from confluent_kafka.serialization import MessageField, SerializationContext

        schema_id = SchemaId("PROTOBUF")
        dual_schema_id_deserializer(payload, SerializationContext(topic, MessageField.VALUE), schema_id)
        return self._message_class(schema_id).DESCRIPTOR

    def _message_class(self, schema_id: Any) -> Any:
        handle = schema_id.id if schema_id.id is not None else schema_id.guid
        indexes = tuple(schema_id.message_indexes or [0])
        cached = self._classes.get((handle, indexes))
        if cached is None:
            schema = (self._client.get_schema(schema_id.id, fmt="serialized") if schema_id.id is not None
                      else self._client.get_schema_by_guid(schema_id.guid, fmt="serialized"))
            cached = self._classes[(handle, indexes)] = _message_type(self._client, schema, indexes)
        return cached


def _message_type(client: Any, schema: Any, indexes: tuple[int, ...]) -> Any:
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for proto in _well_known():
        pool.Add(proto)
    _add_references(client, schema, pool, set())
    file_proto = _file_proto(schema.schema_str, "schema")
    pool.Add(file_proto)
    descriptor = pool.FindFileByName(file_proto.name).message_types_by_name
    message = list(descriptor.values())[indexes[0]]
    for index in indexes[1:]:
        message = message.nested_types[index]
    return message_factory.GetMessageClass(message)


def _file_proto(schema_str: str, name: str) -> Any:
    import base64

    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(schema_str))
    if not proto.name:
        proto.name = name
    return proto


def _add_references(client: Any, schema: Any, pool: Any, seen: set[str]) -> None:
    for ref in schema.references or []:
        if ref.name in seen or ref.name.startswith("google/protobuf/"):
            continue
        seen.add(ref.name)
        referenced = client.get_version(ref.subject, ref.version, fmt="serialized").schema
        _add_references(client, referenced, pool, seen)
        proto = _file_proto(referenced.schema_str, ref.name)
        proto.name = ref.name
        pool.Add(proto)


def _well_known() -> list[Any]:
    from google.protobuf import (
        any_pb2,
        api_pb2,
        descriptor_pb2,
        duration_pb2,
        empty_pb2,
        field_mask_pb2,
        source_context_pb2,
        struct_pb2,
        timestamp_pb2,
        type_pb2,
        wrappers_pb2,
    )

    protos = []
    for module in (any_pb2, source_context_pb2, type_pb2, api_pb2, duration_pb2, empty_pb2, field_mask_pb2,
                   struct_pb2, timestamp_pb2, wrappers_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        protos.append(proto)
    return protos
