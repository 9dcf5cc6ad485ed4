"""Snapshots survive the byte round trip exactly, and damage is detected."""

import pytest

from connector.backends import codec
from connector.errors import SnapshotCorrupt
from connector.state import PartitionRange, Record, Snapshot

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


def test_version_1_snapshots_still_decode():
    """Snapshots written before records carried headers (a replica upgraded between a
    crash and its recovery) decode, with no headers."""
    import struct
    import zlib

    v2 = codec.encode(Snapshot(3, (PartitionRange("a", 0, None, 2, 1),), (Record("a", 0, 1, b"k", b"v", 5),), ()), "p")
    header_len = struct.unpack_from(">I", v2, 8)[0]
    head_end = 12 + header_len + codec._HEAD.size + 2  # + key and value bytes
    v1_body = b"EOSSNAP1" + v2[8:head_end] + v2[head_end + codec._COUNT.size:-4]  # drop the header count
    v1 = v1_body + struct.pack(">I", zlib.crc32(v1_body))
    _, decoded = codec.decode(v1)
    assert decoded.records == (Record("a", 0, 1, b"k", b"v", 5),)
