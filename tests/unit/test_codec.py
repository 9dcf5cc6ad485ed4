"""Snapshots survive the byte round trip exactly, and damage is detected."""

import pytest

from connector.backends import codec
from connector.errors import SnapshotCorrupt
from connector.state import PartitionRange, Record, Snapshot

SNAPSHOT = Snapshot(
    9,
    (PartitionRange("a", 0, None, 3, 2), PartitionRange("b", 5, 10, 11, 1)),
    (Record("a", 0, 1, None, b'{"x":1}', 1700000000000), Record("a", 0, 2, b"k", None),
     Record("b", 5, 10, b"", b"", None)),
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
