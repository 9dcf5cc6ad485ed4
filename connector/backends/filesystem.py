"""The `filesystem` state backend: one file per checkpoint under STATE_DIR.

A snapshot is written to a temporary name, fsynced, renamed to its final name and the
directory fsynced: a file with the final name is always complete. Each pipeline has
its own subdirectory, so pipelines sharing a STATE_DIR never see each other's files.
Replicas of one pipeline may share a STATE_DIR: temporary names are unique per writer,
and recovery removes only temporary files too old to belong to a write in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connector.backends import codec
from connector.errors import SnapshotCorrupt
from connector.models import Snapshot
from connector.protocol.faults import NO_FAULTS, FaultHook

log = logging.getLogger(__name__)
SUFFIX = ".snapshot"
STALE_TEMP_S = 600  # no snapshot write takes this long: an older temp file is a crash's leftover


def pipeline_dirname(pipeline: str) -> str:
    """A file-name-safe, collision-free directory name for any pipeline name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", pipeline)[:80]
    return f"{safe}-{hashlib.sha256(pipeline.encode()).hexdigest()[:12]}"


class FilesystemBackend:
    def __init__(self, state_dir: str, pipeline: str, faults: FaultHook = NO_FAULTS) -> None:
        self.pipeline = pipeline
        self.directory = Path(state_dir) / pipeline_dirname(pipeline)
        self._faults = faults
        self._writer = f"{os.getpid()}-{secrets.token_hex(3)}"

    def _path(self, checkpoint_id: int) -> Path:
        return self.directory / f"{checkpoint_id:020d}{SUFFIX}"

    def save(self, snapshot: Snapshot[Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self._path(snapshot.checkpoint_id)
        temp = final.with_name(f"{final.name}.{self._writer}.tmp")
        with open(temp, "wb") as f:
            f.write(codec.encode(snapshot, self.pipeline))
            f.flush()
            self._faults.reached("mid_snapshot_write")
            os.fsync(f.fileno())
        os.replace(temp, final)
        self._fsync_directory()

    def pending(self) -> Iterator[Snapshot[Any]]:
        """Oldest first, read one at a time. Replicas sharing STATE_DIR may rename, commit
        and discard files meanwhile: a file gone before it is read was finished by another."""
        if not self.directory.is_dir():
            return
        cutoff = time.time() - STALE_TEMP_S
        for temp in self.directory.glob("*.tmp"):  # never renamed: never durable
            with contextlib.suppress(FileNotFoundError):  # renamed or removed by another replica
                if temp.stat().st_mtime < cutoff:
                    temp.unlink(missing_ok=True)
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                payload = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                yield codec.decode(payload)[1]
            except SnapshotCorrupt as exc:
                raise SnapshotCorrupt(f"{path}: {exc}") from None

    def drop_all(self) -> int:
        """Remove every snapshot of the pipeline (an offsets reset: they were cut against
        the old offsets); how many there were."""
        if not self.directory.is_dir():
            return 0
        dropped = 0
        for path in [*self.directory.glob(f"*{SUFFIX}"), *self.directory.glob("*.tmp")]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                dropped += path.suffix == SUFFIX
        return dropped

    def discard(self, checkpoint_id: int) -> None:
        self._path(checkpoint_id).unlink(missing_ok=True)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
