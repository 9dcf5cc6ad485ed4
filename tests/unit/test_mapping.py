"""Record mapping: JSON objects to COPY text rows; bad records name their coordinates."""

from zoneinfo import ZoneInfo

import orjson
import pytest

from connector.errors import MappingError
from connector.formats import RegistryUnavailable
from connector.models import Record
from connector.sink.mapping import REJECT, ColumnSpec, RowMapper, as_op, tolerant
from tests.copyrows import same_effect

COLUMNS = [
    ColumnSpec("id", "bigint", nullable=False),
    ColumnSpec("small", "smallint"),
    ColumnSpec("name", "text"),
    ColumnSpec("code", "text", length=3),
    ColumnSpec("amount", "numeric"),
    ColumnSpec("ratio", "float"),
    ColumnSpec("flag", "boolean"),
    ColumnSpec("at", "timestamptz"),
    ColumnSpec("local", "timestamp"),
    ColumnSpec("day", "date"),
    ColumnSpec("doc", "json"),
    ColumnSpec("uid", "uuid"),
    ColumnSpec("created", "timestamptz", nullable=False, has_default=True),
]
append = RowMapper(COLUMNS, "append")
upsert = RowMapper(COLUMNS, "upsert", ["id"])


def rec(value, key=None, offset=42):
    return Record("visits", 3, offset, key, value)


def test_types_are_adapted():
    value = (b'{"id": 1, "small": 2.0, "name": "Z\\u00fcrich \\ud83d\\ude00", "code": "abc", "amount": 1.10,'
             b'"ratio": 3, "flag": true, "at": "2024-05-01T12:00:00Z", "local": "2024-05-01T14:00:00+02:00",'
             b'"day": "2024-05-01", "doc": {"a": [1, null]}, "uid": "12345678-1234-5678-1234-567812345678",'
             b'"unknown": 1}')
    op = append(rec(value))
    assert op.kind == "insert"
    v = op.values
    assert v["id"] == "1" and v["small"] == "2" and v["name"] == "Zürich 😀" and v["code"] == "abc"
    assert v["amount"] == "1.10" and v["ratio"] == "3.0" and v["flag"] == "t"  # a numeric as written
    assert v["at"] == "2024-05-01T12:00:00Z"  # already what PostgreSQL reads alike: sent as it came
    assert v["local"] == "2024-05-01T12:00:00"  # converted to UTC, then naive
    assert v["day"] == "2024-05-01" and v["doc"] == '{"a":[1,null]}'
    assert v["uid"] == "12345678-1234-5678-1234-567812345678"
    assert "unknown" not in v and "created" not in v  # absent: left to the column default
    assert op.columns == tuple(v) and op.row.endswith("\n") and op.row.count("\t") == len(v) - 1


@pytest.mark.parametrize("field, given, text", [
    ("name", "tab\there\nnewline \\ back", "tab\\there\\nnewline \\\\ back"),
    ("at", "2024-05-01 12:00", "2024-05-01 12:00"),  # read alike by PostgreSQL: sent as it came
    ("at", "2024-W18-3T12:00", "2024-05-01T12:00:00"),  # an ISO week date: rendered anew (UTC)
    ("at", "2024-05-01T14:00:00+02:00", "2024-05-01T14:00:00+02:00"),
    ("at", 1714564800000, "2024-05-01T12:00:00+00:00"),
    ("local", "2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),  # a zero offset: PostgreSQL drops it alike
    ("amount", "  12.50 ", "12.50"), ("amount", 2**63 - 1, "9223372036854775807"),
    ("ratio", "1e3", "1000.0"), ("uid", "{12345678123456781234567812345678}", "12345678-1234-5678-1234-567812345678"),
])
def test_copy_text(field, given, text):
    """Each field's COPY text: escaped where COPY needs it, canonical where it matters."""
    import orjson

    op = append(rec(orjson.dumps({"id": 1, field: given})))
    assert op.row == f"1\t{text}\n"


def test_absent_fields_are_left_out_and_nulls_kept():
    op = append(rec(b'{"id": 1, "name": null}'))
    assert op.values == {"id": "1", "name": None} and op.row == "1\t\\N\n"


@pytest.mark.parametrize(("millis", "instant"), [
    (0, "1970-01-01T00:00:00+00:00"), (-1, "1969-12-31T23:59:59.999000+00:00"),
    # exact to the year 9999 (a double's seconds, as before, gave .998993 there)
    (253402300799999, "9999-12-31T23:59:59.999000+00:00"), (-62135596800000, "0001-01-01T00:00:00+00:00"),
    (1.5, "1970-01-01T00:00:00.001500+00:00"),
])
def test_epoch_millis_into_timestamptz(millis, instant):
    assert append(rec(b'{"id": 1, "at": %s}' % str(millis).encode())).values["at"] == instant


def test_epoch_millis_beyond_the_years_1_to_9999_is_a_bad_record():
    with pytest.raises(MappingError, match="at"):
        append(rec(b'{"id": 1, "at": 253402300800000}'))


@pytest.mark.parametrize("local, expected", [
    ("2026-07-01T12:00:00Z", "2026-07-01T14:00:00"),  # an instant: the zone's wall time (summer, +02)
    ("2026-01-15T12:00:00+05:00", "2026-01-15T08:00:00"),  # winter, +01
    ("2026-01-15T12:00:00", "2026-01-15T12:00:00"),  # no offset: already the zone's wall time
    (0, "1970-01-01T01:00:00"),  # epoch milliseconds: an instant
])
def test_sink_timezone_is_the_wall_clock_of_timestamp_columns(local, expected):
    """SINK_TIMEZONE=Europe/Paris: a `timestamp` column keeps Paris wall time, as PostgreSQL
    casts a timestamptz to timestamp under that TimeZone; `timestamptz` text goes as
    written (the transaction's TimeZone reads a naive one)."""
    paris = RowMapper(COLUMNS, "append", zone=ZoneInfo("Europe/Paris"))
    values = paris(rec(orjson.dumps({"id": 1, "local": local, "at": "2026-01-15T12:00:00"}))).values
    assert values["local"] == expected and values["at"] == "2026-01-15T12:00:00"


@pytest.mark.parametrize("value, reason", [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "JSON list"),
    (b'"text"', "JSON str"),
    (b'\xff\xfe{"id": 1}', "not valid JSON"),
    (b'{"id": "x"}', "field 'id'"),
    (b'{"id": 1, "small": 70000}', "out of range"),
    (b'{"id": 1, "small": 1.5}', "not a whole number"),
    (b'{"id": true}', "boolean is not an integer"),
    (b'{"id": 1, "code": "abcd"}', "exceed the column's length 3"),
    (b'{"id": 1, "name": "a\\u0000b"}', "NUL"),
    (b'{"id": 1, "at": "yesterday"}', "field 'at'"),
    (b'{"id": 1, "flag": "maybe"}', "expected a boolean"),
    (b'{"id": null}', "NOT NULL"),
    (b'{"name": "x"}', "NOT NULL column(s) id"),
    (None, "tombstone"),
])
def test_bad_records_name_their_coordinates(value, reason):
    """I9: every unmappable record raises MappingError with topic, partition and offset."""
    with pytest.raises(MappingError) as err:
        append(rec(value))
    assert "visits[3]@42" in str(err.value) and reason in str(err.value)


def test_upsert_key_from_value_or_record_key():
    assert upsert(rec(b'{"id": 5, "name": "a"}')).values == {"id": "5", "name": "a"}
    op = upsert(rec(b'{"name": "a"}', key=b"7"))
    assert op.values == {"id": "7", "name": "a"} and op.key == ("7",)


def test_a_key_is_its_copy_text_never_coarser_than_postgresql():
    """Keys are compared as their COPY text (PostgreSQL decides which differing texts are one
    key: the writer asks it); a numeric record key filling a text key keeps its digits."""
    cols = [ColumnSpec("n", "numeric", nullable=False), ColumnSpec("at", "timestamptz", nullable=False)]
    mapper = RowMapper(cols, "upsert", ["n", "at"])
    assert mapper(rec(b'{"n": 1.0, "at": "2024-05-01T12:00:00.1234561Z"}')).key == ("1.0", "2024-05-01T12:00:00.1234561Z")
    text_key = RowMapper([ColumnSpec("id", "text", nullable=False)], "upsert", ["id"])
    keys = {text_key(rec(None, key=raw)).key for raw in (b"12345678901234567890123", b"12345678901234567890124",
                                                             b"2.10", b"2.1")}
    assert keys == {("12345678901234567890123",), ("12345678901234567890124",), ("2.10",), ("2.1",)}


@pytest.mark.parametrize("key, expected", [(b'{"id": 9}', 9), (b"9", 9), (b'"9"', 9)])
def test_tombstone_deletes_by_record_key(key, expected):
    op = upsert(rec(None, key=key))
    assert op.kind == "delete" and op.values == {"id": str(expected)}


@pytest.mark.parametrize("key", [None, b'{"other": 1}', b"\xff\xfe"])
def test_tombstone_without_usable_key_is_refused(key):
    with pytest.raises(MappingError):
        upsert(rec(None, key=key))


def test_scalar_key_needs_a_single_key_column():
    two = RowMapper([ColumnSpec("a", "integer"), ColumnSpec("b", "integer")], "upsert", ["a", "b"])
    with pytest.raises(MappingError, match="scalar record key"):
        two(rec(None, key=b"1"))
    assert two(rec(None, key=b'{"a": 1, "b": 2}')).values == {"a": "1", "b": "2"}


def test_metadata_columns():
    """SINK_METADATA_COLUMNS: topic, partition, offset, timestamp and headers land in
    columns (renamed with field=column); a same-named value field does not override them."""
    from connector.models import Record
    from connector.sink.mapping import ColumnSpec, RowMapper

    columns = [ColumnSpec("id", "integer"), ColumnSpec("topic", "text"), ColumnSpec("kafka_partition", "integer"),
               ColumnSpec("kafka_offset", "bigint"), ColumnSpec("ts", "timestamptz"), ColumnSpec("headers", "json")]
    mapper = RowMapper(columns, "append", metadata=[("topic", "topic"), ("partition", "kafka_partition"),
                                                     ("offset", "kafka_offset"), ("timestamp", "ts"),
                                                     ("headers", "headers")])
    record = Record("events", 3, 41, None, b'{"id": 7, "topic": "spoofed"}', 1763805600000,
                    (("trace", b"abc"), ("bin", b"\xff"), ("trace", b"def"), ("empty", None)))
    op = mapper(record)
    assert op.values["id"] == "7" and op.values["topic"] == "events"
    assert (op.values["kafka_partition"], op.values["kafka_offset"]) == ("3", "41")
    assert op.values["ts"] == "2025-11-22T10:00:00+00:00"
    assert op.values["headers"] == '{"trace":["abc","def"],"bin":"/w==","empty":null}'
    assert mapper(Record("events", 0, 1, None, b'{"id": 1}')).values["ts"] is None  # no timestamp: NULL


def test_tolerant_mapping_turns_a_bad_record_into_a_reject_op():
    """ERRORS_TOLERANCE=all: the record becomes a dead letter with its reason; good
    records map as before."""
    mapper = tolerant(append)
    assert mapper(rec(b'{"id": 1}')) == append(rec(b'{"id": 1}'))
    op = mapper(rec(b'{"id": "one"}'))
    assert op.kind == REJECT and op.values["error_class"] == "MappingError"
    assert "field 'id'" in op.values["error"]


def _broken_decoder(topic, payload):
    raise KeyError("the decoder's own bug")


@pytest.mark.parametrize("mapper, value, reason", [
    (append, b'{"id": 1, "doc": ' + b"[" * 5000 + b"]" * 5000 + b"}", "depth"),  # RecursionError in msgspec
    (append, b'{"id": 1, "name": "x\\ud800y"}', "surrogate"),
    (RowMapper(COLUMNS, "append", decode_value=_broken_decoder), b'{"id": 1}', "KeyError"),
])
def test_any_error_mapping_a_record_is_that_records_fault(mapper, value, reason):
    """Whatever raises while a record is mapped, it is a MappingError naming the record (a
    stop after committing what came before, or a dead letter with the reason)."""
    with pytest.raises(MappingError, match=r"visits\[3\]@42.*" + reason):
        mapper(rec(value))
    rejected = tolerant(mapper)(rec(value))
    assert rejected.kind == REJECT and reason in rejected.error[1]
    assert tolerant(append)(rec(b'{"id": 2}')).kind == "insert"


def test_text_a_lenient_decoder_gives_with_a_lone_surrogate_is_refused():
    """Registry formats may hand over text COPY cannot encode: refused at mapping, not in the commit."""
    mapper = RowMapper(COLUMNS, "append", decode_value=lambda topic, payload: {"id": 1, "name": "x\ud800"})
    with pytest.raises(MappingError, match=r"field 'name': text is not valid Unicode"):
        mapper(rec(b"{}"))


@pytest.mark.parametrize("number", [b"12345678901234567890123", b"0.12345678901234567890123456789", b"2.10", b"1e400",
                                    b"-0.0"])
def test_a_json_number_fills_a_numeric_column_exactly_on_both_paths(number):
    """Not through a double: 23-digit integers, 29-digit fractions, trailing zeros and 1e400
    reach a numeric column as written, by the fast path and the general one alike."""
    from decimal import Decimal

    columns = [ColumnSpec("id", "bigint", nullable=False), ColumnSpec("amount", "numeric"),
               ColumnSpec("doc", "json")]
    mapper = RowMapper(columns, "append")
    value = b'{"id": 1, "amount": ' + number + b', "doc": {"ratio": 0.5}}'
    fast = mapper.fast(value)
    general = mapper.general(rec(value)).row
    assert fast is not None and fast == general
    assert Decimal(general.split("\t")[1]) == Decimal(number.decode()) and general.endswith('{"ratio":0.5}\n')


def test_a_renamed_field_fills_its_column_on_both_paths():
    """SINK_FIELDS_RENAME=uid:user_id: field `uid` fills `user_id`; a field named `user_id`
    fills nothing. The fast path (which the C row builder serves) agrees with the general one."""
    columns = [ColumnSpec("user_id", "bigint", field="uid"), ColumnSpec("note", "text"),
               ColumnSpec("at", "timestamptz")]
    mapper = RowMapper(columns, "append")
    value = orjson.dumps({"uid": 5, "user_id": 9, "note": "é\t\"x\"", "at": "2026-01-15T09:30:00Z"})
    general = mapper.general(rec(value))
    assert general.values == {"user_id": "5", "note": "é\t\"x\"", "at": "2026-01-15T09:30:00Z"}
    fast = mapper.fast(value)
    assert isinstance(fast, bytes)  # the C step's, passing over `user_id`
    assert same_effect(as_op(fast, general.columns), general, {c.name: c.kind for c in columns})


def test_flatten_fills_parent_child_columns_exactly():
    """SINK_FLATTEN: nested objects fill `parent_child` columns at any depth, numbers as
    written; a renamed flattened field fills its new column; arrays stay values."""
    columns = [ColumnSpec("id", "bigint"), ColumnSpec("price_amount", "numeric"), ColumnSpec("city", "text"),
               ColumnSpec("tags", "json"), ColumnSpec("a__b__c", "text")]
    by_field = [c if c.name != "city" else ColumnSpec("city", "text", field="address_city") for c in columns]
    value = b'{"id": 1, "price": {"amount": 2.10}, "address": {"city": "S\\u00e3o Paulo"}, "tags": [1, {"x": 2}]}'
    flat = RowMapper(by_field, "append", flatten_with="_")
    assert flat.fast(value) is None  # objects to split: the general path's
    assert flat(rec(value)).values == {"id": "1", "price_amount": "2.10", "city": "São Paulo", "tags": '[1,{"x":2}]'}
    already_flat = b'{"id": 2, "price_amount": 3.5, "address_city": "Zo\\u00eb", "tags": [1], "a__b__c": null}'
    assert as_op(flat.fast(already_flat), flat._layout.row_slots) == flat.general(rec(already_flat))  # nothing to split
    deep = RowMapper(columns, "append", flatten_with="__")(rec(b'{"a": {"b": {"c": "deep"}}}'))
    assert deep.values == {"a__b__c": "deep"}


def test_a_registry_outage_is_no_records_fault():
    """RegistryUnavailable leaves the mapper as it is (the replica stops and a restart
    resumes exactly), never as a bad record to stop on or dead-letter."""
    def unreachable(topic, payload):
        raise RegistryUnavailable("Schema Registry: connection refused")
    for mapper in (RowMapper(COLUMNS, "append", decode_value=unreachable),
                   RowMapper(COLUMNS, "upsert", ["id"], decode_key=unreachable)):
        record = rec(b"\x00\x00\x00\x00\x01payload" if mapper.mode == "append" else None, key=b"\x00k")
        with pytest.raises(RegistryUnavailable):
            tolerant(mapper)(record)


def test_avro_time_units_as_the_schema_says():
    """Epoch micro- and milliseconds, local timestamps, days and time of day: the writer's
    schema says which, the decoded values land as such (the in-memory registry)."""
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from connector.formats import RegistryDecoder, registry_client

    fields = [("us", "long", "timestamp-micros"), ("ms", "long", "timestamp-millis"),
              ("local", "long", "local-timestamp-millis"), ("day", "int", "date"), ("t", "long", "time-micros")]
    schema = orjson.dumps({"type": "record", "name": "E", "fields": [
        {"name": n, "type": {"type": t, "logicalType": lt}} for n, t, lt in fields]}).decode()
    client = registry_client({"url": "mock://time-units"})
    payload = AvroSerializer(client, schema)(
        {"us": 1768487400123456, "ms": 1768487400123, "local": 1768487400123, "day": 20468, "t": 3723000001},
        SerializationContext("visits", MessageField.VALUE))
    columns = [ColumnSpec("us", "timestamptz"), ColumnSpec("ms", "timestamptz"), ColumnSpec("local", "timestamp"),
               ColumnSpec("day", "date"), ColumnSpec("t", "time")]
    values = RowMapper(columns, "append", decode_value=RegistryDecoder("avro", client))(rec(payload)).values
    assert values == {"us": "2026-01-15T14:30:00.123456+00:00", "ms": "2026-01-15T14:30:00.123000+00:00",
                      "local": "2026-01-15T14:30:00.123000", "day": "2026-01-15", "t": "01:02:03.000001"}
