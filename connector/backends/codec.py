"""The byte form of a snapshot, shared by the filesystem and postgres backends. Pure.

A snapshot is stored as its raw records (keys and values as read from Kafka), not as
mapped rows: recovery maps them again, so no Python object is ever unpickled from
storage. Layout: magic, a JSON header (checkpoint ID, pipeline, ranges, topics), the
records as fixed-size heads followed by key and value bytes and the record's headers,
and a CRC-32 of all that.
"""

from __future__ import annotations

import struct
import zlib

import orjson

from connector.errors import SnapshotCorrupt
from connector.state import PartitionRange, Record, Snapshot

MAGIC = b"EOSSNAP2"  # 2: each record carries its headers; version 1 snapshots still decode
MAGIC_V1 = b"EOSSNAP1"
# topic index, partition, offset, timestamp (-1: none), key length, value length (-1: null)
_HEAD = struct.Struct(">HiqqiI")
_NULL = 0xFFFFFFFF
_COUNT = struct.Struct(">H")  # headers of a record
_NAME = struct.Struct(">H")  # header name length, then its UTF-8 bytes
_VALUE = struct.Struct(">i")  # header value length (-1: null), then its bytes


def encode(snapshot: Snapshot, pipeline: str) -> bytes:
    topics = sorted({r.topic for r in snapshot.ranges})
    index = {t: i for i, t in enumerate(topics)}
    header = orjson.dumps({
        "checkpoint_id": snapshot.checkpoint_id, "pipeline": pipeline, "topics": topics,
        "ranges": [[r.topic, r.partition, r.start, r.end, r.records] for r in snapshot.ranges],
    })
    parts = [MAGIC, struct.pack(">I", len(header)), header]
    for rec in snapshot.records:
        key_len = -1 if rec.key is None else len(rec.key)
        value_len = _NULL if rec.value is None else len(rec.value)
        ts = -1 if rec.timestamp_ms is None else rec.timestamp_ms
        parts.append(_HEAD.pack(index[rec.topic], rec.partition, rec.offset, ts, key_len, value_len))
        parts.append(rec.key or b"")
        parts.append(rec.value or b"")
        parts.append(_COUNT.pack(len(rec.headers)))
        for name, value in rec.headers:
            encoded = name.encode()
            parts += [_NAME.pack(len(encoded)), encoded, _VALUE.pack(-1 if value is None else len(value)), value or b""]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


def decode(data: bytes) -> tuple[str, Snapshot]:
    """(pipeline, snapshot with records and no ops); SnapshotCorrupt if damaged."""
    if len(data) < len(MAGIC) + 8 or not data.startswith((MAGIC, MAGIC_V1)):
        raise SnapshotCorrupt("not a snapshot (bad magic or too short)")
    with_headers = data.startswith(MAGIC)
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise SnapshotCorrupt("checksum mismatch")
    pos = len(MAGIC)
    (header_len,) = struct.unpack_from(">I", body, pos)
    pos += 4
    header = orjson.loads(body[pos:pos + header_len])
    pos += header_len
    topics = header["topics"]
    records = []
    while pos < len(body):
        t, partition, offset, ts, key_len, value_len = _HEAD.unpack_from(body, pos)
        pos += _HEAD.size
        key = None if key_len < 0 else body[pos:pos + key_len]
        pos += max(key_len, 0)
        value = None if value_len == _NULL else body[pos:pos + value_len]
        pos += 0 if value_len == _NULL else value_len
        headers: list[tuple[str, bytes | None]] = []
        if with_headers:
            (count,) = _COUNT.unpack_from(body, pos)
            pos += _COUNT.size
            for _ in range(count):
                (name_len,) = _NAME.unpack_from(body, pos)
                name = body[pos + _NAME.size:pos + _NAME.size + name_len].decode()
                pos += _NAME.size + name_len
                (header_len,) = _VALUE.unpack_from(body, pos)
                pos += _VALUE.size
                headers.append((name, None if header_len < 0 else body[pos:pos + header_len]))
                pos += max(header_len, 0)
        records.append(Record(topics[t], partition, offset, key, value, None if ts < 0 else ts, tuple(headers)))
    ranges = tuple(PartitionRange(*r) for r in header["ranges"])
    return header["pipeline"], Snapshot(header["checkpoint_id"], ranges, tuple(records), ())
