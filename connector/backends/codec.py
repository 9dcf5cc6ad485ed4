"""The byte form of a snapshot, shared by the filesystem and postgres backends. Pure.

A snapshot is stored as its raw records (keys and values as read from Kafka), not as
mapped rows: recovery maps them again, so no Python object is ever unpickled from
storage. Layout (version 4, columnar: written without a Python step per record): the
magic, then a Zstandard frame (level 1, by the `zstandard` library: 100 000 JSON records
in ~7 ms with the GIL released, where zlib's level 1 took ~37 ms and stored three times
the bytes) of a JSON header (checkpoint ID, pipeline, ranges, topics, and the segments:
topic index, partition, record count), then per segment its offsets and timestamps
(int64, -1: none), key and value lengths (int32, -1: null), the keys and the values back
to back, and its records' headers (a flag byte; when set, each record's headers as in
version 2); last a CRC-32 of all that. Integers are little-endian. Version 3 (the same
body, zlib's level 1) and versions 2 and 1 (one fixed-size head per record) still decode.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from typing import Any

import orjson
import zstandard

from connector.backends._columns import columns
from connector.errors import SnapshotCorrupt
from connector.models import PartitionRange, Record, Snapshot
from connector.protocol.runs import RecordsView, Run, runs_of

MAGIC = b"EOSSNAP4"  # 4: columnar segments, Zstandard
MAGIC_V3 = b"EOSSNAP3"  # 3: columnar segments, zlib
MAGIC_V2 = b"EOSSNAP2"  # 2: each record carries its headers
MAGIC_V1 = b"EOSSNAP1"
# topic index, partition, offset, timestamp (-1: none), key length, value length (-1: null)
_HEAD = struct.Struct(">HiqqiI")
_NULL = 0xFFFFFFFF
_COUNT = struct.Struct(">H")  # headers of a record
_NAME = struct.Struct(">H")  # header name length, then its UTF-8 bytes
_VALUE = struct.Struct(">i")  # header value length (-1: null), then its bytes


def encode(snapshot: Snapshot[Any], pipeline: str) -> bytes:
    records = snapshot.records
    segments = records.segments if isinstance(records, RecordsView) else \
        [(run, 0, len(run)) for run in runs_of(list(records))]
    topics = sorted({r.topic for r in snapshot.ranges})  # every segment's partition has its range
    index = {t: i for i, t in enumerate(topics)}
    header = orjson.dumps({
        "checkpoint_id": snapshot.checkpoint_id, "pipeline": pipeline, "topics": topics,
        "ranges": [[r.topic, r.partition, r.start, r.end, r.records] for r in snapshot.ranges],
        "segments": [[index[run.topic], run.partition, stop - start] for run, start, stop in segments],
    })
    parts = [struct.pack("<I", len(header)), header]
    for run, start, stop in segments:
        parts += _segment(run, start, stop)
    body = MAGIC + zstandard.ZstdCompressor(level=1).compress(b"".join(parts))
    return body + struct.pack(">I", zlib.crc32(body))


def _segment(run: Run, start: int, stop: int) -> list[bytes]:
    """A segment's columns, read in C (`_columns.c`: the loop's thread waits on the GIL
    for half as long as when they were read in Python; by the source's own `columns`
    where it has one), then its records' headers."""
    fields, items, values = run.fields, run.items[start:stop], run.values[start:stop]
    read = fields.columns
    parts = list(read(items, values) if read else columns(items, values, fields.offset, fields.timestamp, fields.key))
    headers = list(map(fields.headers, items))
    if any(headers):
        parts.append(b"\x01")
        for record_headers in headers:
            parts += _headers(record_headers or ())
    else:
        parts.append(b"\x00")
    return parts


def _headers(headers: Sequence[tuple[str, bytes | None]]) -> list[bytes]:
    parts = [_COUNT.pack(len(headers))]
    for name, value in headers:
        encoded = name.encode()
        parts += [_NAME.pack(len(encoded)), encoded, _VALUE.pack(-1 if value is None else len(value)), value or b""]
    return parts


def _read_headers(body: bytes, pos: int) -> tuple[tuple[tuple[str, bytes | None], ...], int]:
    (count,) = _COUNT.unpack_from(body, pos)
    pos += _COUNT.size
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        (name_len,) = _NAME.unpack_from(body, pos)
        name = body[pos + _NAME.size:pos + _NAME.size + name_len].decode()
        pos += _NAME.size + name_len
        (value_len,) = _VALUE.unpack_from(body, pos)
        pos += _VALUE.size
        headers.append((name, None if value_len < 0 else body[pos:pos + value_len]))
        pos += max(value_len, 0)
    return tuple(headers), pos


def decode(data: bytes) -> tuple[str, Snapshot[Any]]:
    """(pipeline, snapshot with records and no ops); SnapshotCorrupt if damaged."""
    if len(data) < len(MAGIC) + 8 or not data.startswith((MAGIC, MAGIC_V3, MAGIC_V2, MAGIC_V1)):
        raise SnapshotCorrupt("not a snapshot (bad magic or too short)")
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise SnapshotCorrupt("checksum mismatch")
    if data.startswith((MAGIC, MAGIC_V3)):
        return _decode_columnar(_decompress(body))
    with_headers = data.startswith(MAGIC_V2)
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
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if with_headers:
            headers, pos = _read_headers(body, pos)
        records.append(Record(topics[t], partition, offset, key, value, None if ts < 0 else ts, headers))
    ranges = tuple(PartitionRange(*r) for r in header["ranges"])
    return header["pipeline"], Snapshot(header["checkpoint_id"], ranges, tuple(records), ())


def _decompress(data: bytes) -> bytes:
    """A columnar snapshot's body: Zstandard (version 4) or zlib (version 3)."""
    try:
        if data.startswith(MAGIC):
            return zstandard.ZstdDecompressor().decompress(data[len(MAGIC):])
        return zlib.decompress(data[len(MAGIC_V3):])
    except (zstandard.ZstdError, zlib.error) as exc:
        raise SnapshotCorrupt(f"cannot decompress: {exc}") from None


def _decode_columnar(body: bytes) -> tuple[str, Snapshot[Any]]:
    pos = 0
    (header_len,) = struct.unpack_from("<I", body, pos)
    header = orjson.loads(body[pos + 4:pos + 4 + header_len])
    pos += 4 + header_len
    topics, records = header["topics"], []
    for t, partition, count in header["segments"]:
        columns = []
        for code in "qqii":
            column = array(code)
            column.frombytes(body[pos:pos + count * column.itemsize])
            pos += count * column.itemsize
            if sys.byteorder == "big":
                column.byteswap()
            columns.append(column)
        offsets, stamps, key_lens, value_lens = columns
        keys, pos = _split(body, pos, key_lens)
        values, pos = _split(body, pos, value_lens)
        with_headers = body[pos:pos + 1] == b"\x01"
        pos += 1
        for i in range(count):
            headers: tuple[tuple[str, bytes | None], ...] = ()
            if with_headers:
                headers, pos = _read_headers(body, pos)
            records.append(Record(topics[t], partition, offsets[i], keys[i], values[i],
                                  None if stamps[i] < 0 else stamps[i], headers))
    if pos != len(body):
        raise SnapshotCorrupt(f"{len(body) - pos} bytes after the last segment")
    ranges = tuple(PartitionRange(*r) for r in header["ranges"])
    return header["pipeline"], Snapshot(header["checkpoint_id"], ranges, tuple(records), ())


def _split(body: bytes, pos: int, lengths: array[int]) -> tuple[list[bytes | None], int]:
    """Fields stored back to back with these lengths (-1: null); the position after."""
    out: list[bytes | None] = []
    for length in lengths:
        if length < 0:
            out.append(None)
        else:
            out.append(body[pos:pos + length])
            pos += length
    return out, pos
