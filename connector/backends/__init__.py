"""State backends: where a snapshot is made durable before its commit (step 2, beside
step 3's writes: the postgres backend saves on a connection of its own).

All three implement `connector.protocol.checkpoint.StateBackend`: `save`, `pending`, `discard`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.protocol.faults import NO_FAULTS, FaultHook

if TYPE_CHECKING:
    from connector.config import Settings
    from connector.protocol.checkpoint import StateBackend
    from connector.sink.postgres import PostgresStore


def build_backend(settings: Settings, store: PostgresStore, faults: FaultHook = NO_FAULTS) -> StateBackend:
    if settings.state_backend == "filesystem":
        from connector.backends.filesystem import FilesystemBackend

        return FilesystemBackend(settings.state_dir, settings.connector_name, faults)
    if settings.state_backend == "postgres":
        from connector.backends.postgres import PostgresBackend

        return PostgresBackend(store.rows, faults)
    from connector.backends.memory import MemoryBackend

    return MemoryBackend()
