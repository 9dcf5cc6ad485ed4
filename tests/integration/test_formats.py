"""VALUE_FORMAT avro, json-schema and protobuf through Schema Registry framing, end to end
against a real PostgreSQL and Kafka-protocol cluster: every record lands once, with
its types, and a value that is not framed becomes a dead letter naming the reason.

The registry is confluent-kafka's in-memory `mock://` registry, which lives in one
process: the producer here and the replica (a real `Runner`, run in a thread of this
process) share it. A real registry is reached the same way over HTTP."""

from __future__ import annotations

import datetime
import decimal

import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2  # noqa: F401

from connector.cli import _migrate
from connector.config import Settings
from connector.formats import registry_client

pytestmark = pytest.mark.integration
DDL = ("CREATE TABLE {table} (event_id bigint NOT NULL, user_id text, at timestamptz, amount numeric(8, 2), "
       "tags jsonb)")
AT = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
AVRO = """{"type": "record", "name": "Visit", "fields": [
  {"name": "event_id", "type": "long"}, {"name": "user_id", "type": ["null", "string"]},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}},
  {"name": "tags", "type": {"type": "array", "items": "string"}}]}"""
JSON_SCHEMA = """{"type": "object", "properties": {"event_id": {"type": "integer"}, "user_id": {"type": "string"},
  "at": {"type": "string"}, "amount": {"type": "string"}, "tags": {"type": "array"}}}"""


def visit_class():
    """A Protobuf message class, as a user's generated code would define it."""
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="eos_test_visit.proto", package="eos.test", syntax="proto3")
    file.dependency.append("google/protobuf/timestamp.proto")
    message = file.message_type.add(name="Visit")
    for number, (name, kind, extra) in enumerate([
            ("event_id", F.TYPE_INT64, {}), ("user_id", F.TYPE_STRING, {}),
            ("at", F.TYPE_MESSAGE, {"type_name": ".google.protobuf.Timestamp"}), ("amount", F.TYPE_STRING, {}),
            ("tags", F.TYPE_STRING, {"label": F.LABEL_REPEATED})], start=1):
        message.field.add(name=name, number=number, type=kind, **{"label": F.LABEL_OPTIONAL, **extra})
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("eos.test.Visit"))


def serializer(fmt: str, client):
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    if fmt == "avro":
        avro = AvroSerializer(client, AVRO)
        return lambda i, ctx: avro({"event_id": i, "user_id": f"u{i}", "at": AT, "tags": ["a", str(i)],
                                    "amount": decimal.Decimal(i) / 4}, ctx)
    if fmt == "json-schema":
        json = JSONSerializer(JSON_SCHEMA, client)
        return lambda i, ctx: json({"event_id": i, "user_id": f"u{i}", "at": AT.isoformat(), "tags": ["a", str(i)],
                                    "amount": str(decimal.Decimal(i) / 4)}, ctx)
    visit, proto = visit_class(), ProtobufSerializer(visit_class(), client, {"use.deprecated.format": False})

    def make(i, ctx):
        message = visit(event_id=i, user_id=f"u{i}", amount=str(decimal.Decimal(i) / 4), tags=["a", str(i)])
        message.at.FromDatetime(AT)
        return proto(message, ctx)
    return make


@pytest.mark.parametrize("fmt", ["avro", "json-schema", "protobuf"])
def test_registry_format_lands_exactly_once(make_pipeline, fmt):
    from confluent_kafka.serialization import MessageField, SerializationContext

    p = make_pipeline(DDL, partitions=2)
    url = f"mock://{p.name}"
    encode = serializer(fmt, registry_client({"url": url}))
    ctx = SerializationContext(p.topic, MessageField.VALUE)
    messages = [(str(i).encode(), encode(i, ctx)) for i in range(300)]
    messages.insert(150, (b"unframed", b'{"event_id": 999}'))  # plain JSON: not the configured format
    p.produce(messages, partition_of=lambda i: i % 2)
    settings = Settings.from_env(p.env(VALUE_FORMAT=fmt, SCHEMA_REGISTRY_URL=url, ERRORS_TOLERANCE="all",
                                       CHECKPOINT_MAX_RECORDS="64"))
    _migrate(settings.libpq_url, settings.connector_schema)
    assert p.run_in_process(settings)[1] == 0
    p.assert_exact(300)
    row = p.rows("user_id, at, amount, tags", "WHERE event_id = 42")[0]
    assert row == ("u42", AT, decimal.Decimal("10.50"), ["a", "42"])
    letters = p.services.sql('SELECT "offset", error_class, error FROM eos_connector.deadletters WHERE pipeline = %s',
                             (p.name,))
    assert len(letters) == 1 and letters[0][1] == "MappingError"
    assert f"value is not {fmt}" in letters[0][2] and "magic byte" in letters[0][2].lower()


def test_avro_keyed_tombstones_delete(make_pipeline):
    """KEY_FORMAT=avro: a tombstone's key is decoded through the registry, so it deletes its
    row; a key that is not Avro is a bad record naming the reason."""
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    p = make_pipeline("CREATE TABLE {table} (event_id bigint PRIMARY KEY, user_id text)", partitions=2)
    url = f"mock://{p.name}"
    key = AvroSerializer(registry_client({"url": url}), '{"type": "record", "name": "VisitKey", "fields": '
                                                        '[{"name": "event_id", "type": "long"}]}')
    ctx = SerializationContext(p.topic, MessageField.KEY)
    values = [(key({"event_id": i}, ctx), orjson.dumps({"event_id": i, "user_id": f"ü{i}"})) for i in range(100)]
    tombstones = [(key({"event_id": i}, ctx), None) for i in range(0, 100, 2)]
    ids = [*range(100), *range(0, 100, 2), 1]  # each key's records in one partition, in order
    p.produce([*values, *tombstones, (b'{"event_id": 1}', None)], partition_of=lambda i: ids[i] % 2)
    settings = Settings.from_env(p.env(SINK_MODE="upsert", KEY_FORMAT="avro", SCHEMA_REGISTRY_URL=url,
                                       ERRORS_TOLERANCE="all", CHECKPOINT_MAX_RECORDS="40"))
    _migrate(settings.libpq_url, settings.connector_schema)
    assert p.run_in_process(settings)[1] == 0
    assert p.rows("event_id, user_id", "ORDER BY event_id") == [(i, f"ü{i}") for i in range(1, 100, 2)]
    letters = p.services.sql("SELECT error FROM eos_connector.deadletters WHERE pipeline = %s", (p.name,))
    assert len(letters) == 1 and "record key: key is not avro" in letters[0][0]


def test_avro_tables_made_from_the_writers_schema(make_pipeline):
    """SINK_AUTO_CREATE with VALUE_FORMAT=avro: the columns are typed as the writer's schema
    declares them — a field null in the first record too — and every record lands."""
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    p = make_pipeline("SELECT 1", partitions=1)
    url = f"mock://{p.name}"
    schema = AVRO.replace('"fields": [', '"fields": [{"name": "score", "type": ["null", "double"]}, '
                                         '{"name": "day", "type": {"type": "int", "logicalType": "date"}}, '
                                         '{"name": "n", "type": "int"}, ')
    avro = AvroSerializer(registry_client({"url": url}), schema)
    ctx = SerializationContext(p.topic, MessageField.VALUE)

    def visit(i: int) -> dict:
        return {"event_id": i, "user_id": None if i == 0 else f"ü{i}", "at": AT, "tags": ["a", str(i)], "n": i,
                "amount": decimal.Decimal(i) / 4, "score": None if i == 0 else i / 2, "day": AT.date()}
    p.produce([(None, avro(visit(i), ctx)) for i in range(100)])
    settings = Settings.from_env(p.env(VALUE_FORMAT="avro", SCHEMA_REGISTRY_URL=url, SINK_AUTO_CREATE="true"))
    _migrate(settings.libpq_url, settings.connector_schema)
    assert p.run_in_process(settings)[1] == 0
    assert dict(p.services.sql("SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
                               "JOIN pg_attribute ON attrelid = %s::regclass AND attname = column_name "
                               "WHERE table_name = %s", (p.table, p.table))) == {
        "event_id": "bigint", "user_id": "text", "at": "timestamp with time zone", "amount": "numeric(8,2)",
        "tags": "text[]", "score": "double precision", "day": "date", "n": "integer"}
    assert p.rows("event_id, user_id, at, amount, tags, score, day, n", "ORDER BY event_id") == [
        (i, None if i == 0 else f"ü{i}", AT, decimal.Decimal(i) / 4, ["a", str(i)], None if i == 0 else i / 2,
         AT.date(), i) for i in range(100)]


@pytest.mark.parametrize("fmt, types, row", [
    ("json-schema", {"event_id": "bigint", "user_id": "text", "at": "text", "amount": "text", "tags": "jsonb"},
     ("u42", AT.isoformat(), "10.5", ["a", "42"])),
    ("protobuf", {"event_id": "bigint", "user_id": "text", "at": "timestamp with time zone", "amount": "text",
                  "tags": "text[]"}, ("u42", AT, "10.5", ["a", "42"])),
])
def test_json_schema_and_protobuf_tables_made_from_the_writers_schema(make_pipeline, fmt, types, row):
    from confluent_kafka.serialization import MessageField, SerializationContext

    p = make_pipeline("SELECT 1", partitions=1)
    url = f"mock://{p.name}"
    encode = serializer(fmt, registry_client({"url": url}))
    ctx = SerializationContext(p.topic, MessageField.VALUE)
    p.produce([(None, encode(i, ctx)) for i in range(100)])
    settings = Settings.from_env(p.env(VALUE_FORMAT=fmt, SCHEMA_REGISTRY_URL=url, SINK_AUTO_CREATE="true"))
    _migrate(settings.libpq_url, settings.connector_schema)
    assert p.run_in_process(settings)[1] == 0
    assert dict(p.services.sql("SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
                               "JOIN pg_attribute ON attrelid = %s::regclass AND attname = column_name "
                               "WHERE table_name = %s", (p.table, p.table))) == types
    assert p.count() == 100 and p.rows("user_id, at, amount, tags", "WHERE event_id = 42") == [row]
