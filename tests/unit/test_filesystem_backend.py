"""The filesystem state backend: durable snapshots, safe alongside another writer."""

import os
import time

from connector.backends.filesystem import STALE_TEMP_S, FilesystemBackend
from connector.models import PartitionRange, Record, Snapshot


def snapshot(cid: int) -> Snapshot:
    return Snapshot(cid, (PartitionRange("t", 0, None, 2, 2),),
                    (Record("t", 0, 0, None, b"{}"), Record("t", 0, 1, b"k", b"{}")), ())


def test_save_pending_discard(tmp_path):
    backend = FilesystemBackend(str(tmp_path), "pipe")
    backend.save(snapshot(3))
    backend.save(snapshot(1))
    assert [s.checkpoint_id for s in backend.pending()] == [1, 3]
    assert list(backend.pending())[0].records == snapshot(1).records
    backend.discard(1)
    assert [s.checkpoint_id for s in FilesystemBackend(str(tmp_path), "pipe").pending()] == [3]
    assert list(FilesystemBackend(str(tmp_path), "other pipe").pending()) == []


def test_recovery_keeps_another_writers_temp_file_and_removes_old_leftovers(tmp_path):
    """A replica recovering in a shared STATE_DIR must not delete a snapshot another live
    replica is writing; a crash's leftover is removed once it is old."""
    backend = FilesystemBackend(str(tmp_path), "pipe")
    backend.directory.mkdir(parents=True)
    in_progress = backend.directory / "00000000000000000007.snapshot.123-abc.tmp"
    leftover = backend.directory / "00000000000000000005.snapshot.99-def.tmp"
    in_progress.write_bytes(b"partial")
    leftover.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_S - 1
    os.utime(leftover, (old, old))
    assert list(backend.pending()) == []
    assert in_progress.exists() and not leftover.exists()


def test_pending_snapshots_are_read_one_at_a_time_and_one_finished_meanwhile_is_skipped(tmp_path):
    """Recovery holds one pending snapshot in memory at a time; a snapshot that a replica
    sharing STATE_DIR commits and discards after the listing is skipped, not an error."""
    backend = FilesystemBackend(str(tmp_path), "pipe")
    for cid in (1, 2, 3):
        backend.save(snapshot(cid))
    pending = iter(backend.pending())
    first = next(pending)
    FilesystemBackend(str(tmp_path), "pipe").discard(2)  # another replica finished it
    assert [first.checkpoint_id] + [s.checkpoint_id for s in pending] == [1, 3]
