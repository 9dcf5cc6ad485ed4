"""The `postgres` state backend: a snapshot is a row in the bookkeeping schema.

Any replica of the pipeline sees every pending snapshot, so one replica can finish
another's (I4); the commit's compare-and-set makes that safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from connector.backends import codec
from connector.models import Snapshot
from connector.protocol.faults import NO_FAULTS, FaultHook


class SnapshotRows(Protocol):
    pipeline: str

    def save_snapshot(self, checkpoint_id: int, payload: bytes) -> None: ...
    def snapshot_ids(self) -> list[int]: ...
    def load_snapshot(self, checkpoint_id: int) -> bytes | None: ...
    def delete_snapshot(self, checkpoint_id: int) -> None: ...


class PostgresBackend:
    def __init__(self, store: SnapshotRows, faults: FaultHook = NO_FAULTS) -> None:
        self._store, self._faults = store, faults

    def save(self, snapshot: Snapshot[Any]) -> None:
        payload = codec.encode(snapshot, self._store.pipeline)
        self._faults.reached("mid_snapshot_write")
        self._store.save_snapshot(snapshot.checkpoint_id, payload)

    def pending(self) -> Iterator[Snapshot[Any]]:
        """Oldest first, loaded one at a time; one that another replica finished meanwhile
        is skipped."""
        for checkpoint_id in self._store.snapshot_ids():
            payload = self._store.load_snapshot(checkpoint_id)
            if payload is not None:
                yield codec.decode(payload)[1]

    def discard(self, checkpoint_id: int) -> None:
        self._store.delete_snapshot(checkpoint_id)
