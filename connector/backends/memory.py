"""The `memory` state backend: snapshots are made durable nowhere.

Recovery after a crash re-reads Kafka from the database's offsets, which is always
correct and costs only the re-read of at most one checkpoint per partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connector.models import Snapshot


class MemoryBackend:
    def save(self, snapshot: Snapshot[Any]) -> None:
        pass

    def pending(self) -> Iterator[Snapshot[Any]]:
        return iter(())

    def discard(self, checkpoint_id: int) -> None:
        pass
