"""Snapshots survive the byte round trip exactly, and damage is detected."""

import operator
import struct

import pytest

from connector.backends import codec
from connector.errors import SnapshotCorrupt
from connector.models import PartitionRange, Record, Snapshot
from connector.protocol.runs import RecordsView, runs_of
from connector.protocol.state import OperatorState

SNAPSHOT = Snapshot(
    9,
    (PartitionRange("a", 0, None, 3, 2), PartitionRange("b", 5, 10, 11, 1)),
    (Record("a", 0, 1, None, b'{"x":1}', 1700000000000), Record("a", 0, 2, b"k", None),
     Record("b", 5, 10, b"", b"", None, (("trace-id", b"\x00\xff"), ("ü", None), ("trace-id", b"2")))),
    ("ops are not stored",),
)


def test_round_trip():
    pipeline, decoded = codec.decode(codec.encode(SNAPSHOT, "pipe"))
    assert pipeline == "pipe"
    assert (decoded.checkpoint_id, decoded.ranges, decoded.records) == (9, SNAPSHOT.ranges, SNAPSHOT.records)
    assert decoded.ops == ()


@pytest.mark.parametrize("damage", [lambda b: b[:-1], lambda b: b[:20] + b"X" + b[21:], lambda b: b"junk" + b])
def test_damage_is_detected(damage):
    with pytest.raises(SnapshotCorrupt):
        codec.decode(damage(codec.encode(SNAPSHOT, "pipe")))


def legacy(snapshot, pipeline, with_headers=True):
    """A snapshot as versions 2 (headers) and 1 (none) wrote it: one head per record."""
    import struct
    import zlib

    import orjson

    topics = sorted({r.topic for r in snapshot.ranges})
    header = orjson.dumps({"checkpoint_id": snapshot.checkpoint_id, "pipeline": pipeline, "topics": topics,
                           "ranges": [[r.topic, r.partition, r.start, r.end, r.records] for r in snapshot.ranges]})
    parts = [b"EOSSNAP2" if with_headers else b"EOSSNAP1", struct.pack(">I", len(header)), header]
    for rec in snapshot.records:
        parts.append(codec._HEAD.pack(topics.index(rec.topic), rec.partition, rec.offset,
                                      -1 if rec.timestamp_ms is None else rec.timestamp_ms,
                                      -1 if rec.key is None else len(rec.key),
                                      0xFFFFFFFF if rec.value is None else len(rec.value)))
        parts += [rec.key or b"", rec.value or b""]
        if with_headers:
            parts += codec._headers(rec.headers)
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


def test_version_3_snapshots_still_decode():
    """Version 3 is version 4's body compressed by zlib instead of Zstandard."""
    import struct
    import zlib

    import zstandard

    current = codec.encode(SNAPSHOT, "pipe")
    assert current.startswith(b"EOSSNAP4")
    body = b"EOSSNAP3" + zlib.compress(zstandard.ZstdDecompressor().decompress(current[8:-4]), 1)
    pipeline, decoded = codec.decode(body + struct.pack(">I", zlib.crc32(body)))
    assert (pipeline, decoded.checkpoint_id, decoded.ranges, decoded.records) == \
           ("pipe", 9, SNAPSHOT.ranges, SNAPSHOT.records)


def test_version_2_and_1_snapshots_still_decode():
    """Snapshots written by earlier versions (a replica upgraded between a crash and its
    recovery) decode; version 1 records carry no headers."""
    _, decoded = codec.decode(legacy(SNAPSHOT, "p"))
    assert decoded.records == SNAPSHOT.records
    plain = Snapshot(3, (PartitionRange("a", 0, None, 2, 1),), (Record("a", 0, 1, b"k", b"v", 5),), ())
    _, decoded = codec.decode(legacy(plain, "p", with_headers=False))
    assert decoded.records == (Record("a", 0, 1, b"k", b"v", 5),)


def test_a_snapshot_of_runs_encodes_without_records_and_decodes_to_them():
    """The buffer's snapshot (runs read through their fields, as from Kafka messages)
    round-trips to the same records as a snapshot of Record tuples."""
    state = OperatorState()
    for tp in (("a", 0), ("b", 5)):
        state.assign(tp, None)
    state.add_runs(runs_of(list(SNAPSHOT.records)), lambda run, start, stop: [None] * (stop - start), 100, 10**9)
    snapshot = state.snapshot(9)
    assert codec.encode(snapshot, "pipe") == codec.encode(Snapshot(9, snapshot.ranges, tuple(snapshot.records), ()),
                                                          "pipe")
    _, decoded = codec.decode(codec.encode(snapshot, "pipe"))
    assert decoded.records == SNAPSHOT.records and decoded.ranges == snapshot.ranges


def test_kafka_messages_encode_as_their_records():
    """Runs of Kafka's own messages (their columns read in C, from the messages'
    struct): every timestamp kind, none among them (type 0), null and empty keys and
    values, headers; they decode to the records the messages are."""
    from confluent_kafka import Message

    from connector.kafka.messages import MESSAGE_FIELDS, to_record
    from connector.protocol.runs import Run

    messages = [Message(topic="a", partition=0, offset=o, key=k, value=v, timestamp=t, headers=h)
                for o, (k, v, t, h) in enumerate([(None, b'{"x":1}', (1, 1700000000000), None),
                                                 (b"k", None, (2, 5), [("trace-id", b"\x00\xff"), ("ü", None)]),
                                                 (b"", b"", (0, 12345), None), (b"\xff" * 300, b"v" * 70000, (1, 0), [])],
                                                start=7)]
    run = Run("a", 0, messages, [m.value() for m in messages], 0, MESSAGE_FIELDS)
    snapshot = Snapshot(4, (PartitionRange("a", 0, 7, 11, 4),), RecordsView([(run, 0, 4)]), ())
    _, decoded = codec.decode(codec.encode(snapshot, "pipe"))
    assert decoded.records == tuple(map(to_record, messages))
    assert [r.timestamp_ms for r in decoded.records] == [1700000000000, 5, None, 0]


def test_kafka_messages_are_read_from_their_struct_as_their_methods_read_them():
    """The installed confluent-kafka's messages are read from their C struct (no method
    call per record under the GIL the loop's thread needs), and that reads what their
    methods answer: every timestamp kind, none among them, null, empty and long keys."""
    from confluent_kafka import Message

    from connector.backends._columns import columns
    from connector.kafka.messages import MESSAGE_FIELDS

    assert MESSAGE_FIELDS.columns is not None
    messages = [Message(topic="a", partition=2, offset=2**40 + o, key=k, value=b"v%d" % o, timestamp=t)
                for o, (k, t) in enumerate([(None, (1, 1_700_000_000_000)), (b"k", (2, 5)), (b"", (0, 12345)),
                                            (b"\xff" * 300, (1, 0)), (b"\x00", None)])]
    values = [m.value() for m in messages]
    read = MESSAGE_FIELDS.columns(messages, values)
    assert read == columns(messages, values, Message.offset, Message.timestamp, Message.key)
    assert read[1] == struct.pack("<5q", 1_700_000_000_000, 5, -1, 0, -1)


def test_a_struct_laid_out_otherwise_is_read_through_the_methods(monkeypatch):
    """If the struct does not read as the methods answer (another confluent-kafka),
    the messages are read through their methods; the struct is read only from messages."""
    from confluent_kafka import Message

    import connector.kafka.messages as kafka_messages
    from connector.backends._columns import message_columns

    assert kafka_messages.struct_columns() is not None
    monkeypatch.setattr(kafka_messages, "message_fields", lambda _type, m: (m.offset() + 1, -1, id(m.key())))
    assert kafka_messages.struct_columns() is None
    with pytest.raises(TypeError, match=r"a tuple is not a .*Message"):
        message_columns(Message, [(1, 2)], [b"v"])
    with pytest.raises(TypeError, match="laid out as confluent-kafka's Message"):
        message_columns(int, [1], [b"v"])


def test_a_key_or_value_that_is_no_bytes_is_refused():
    from connector.backends._columns import columns

    record = Record("a", 0, 1, "text key", b"v")
    fields = (operator.attrgetter("offset"), operator.attrgetter("timestamp_ms"), operator.attrgetter("key"))
    with pytest.raises(TypeError, match="a key must be bytes or None, not str"):
        columns([record], [b"v"], *fields)
    with pytest.raises(TypeError, match="a value must be bytes or None, not int"):
        columns([record._replace(key=None)], [1], *fields)
    with pytest.raises(ValueError, match="one value per item"):
        columns([record], [], *fields)
