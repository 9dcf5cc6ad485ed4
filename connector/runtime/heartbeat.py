"""The replica's heartbeat and the operator requests it brings (`savepoint create`):
a `checkpoint` now, or a `stop` (stop-with-savepoint: the final checkpoint comes with
the shutdown)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from connector.errors import TransientError

log = logging.getLogger(__name__)
HEARTBEAT_EVERY_S = 2.0  # the replica's heartbeat row; operator requests are read with it


class HeartbeatStore(Protocol):
    def heartbeat(self, acked: int | None) -> tuple[int, list[tuple[int, str]]]: ...


class Heartbeat:
    """Beats every HEARTBEAT_EVERY_S of `clock`; `acked` is the newest request served."""

    def __init__(self, store: HeartbeatStore, clock: Callable[[], float]) -> None:
        self._store, self._clock = store, clock
        self._at: float | None = None
        self._acked: int | None = None

    def due(self) -> bool:
        return self._at is None or self._clock() - self._at >= HEARTBEAT_EVERY_S

    def beat(self, checkpoint: Callable[[], None], stop: Callable[[], None]) -> None:
        """Refresh the heartbeat if it is due, and serve the requests it brings:
        `checkpoint()` for each checkpoint request, `stop()` for a stop request
        (acknowledged by leaving, after the final checkpoint)."""
        if self.due():
            self._beat(checkpoint, stop)

    def _beat(self, checkpoint: Callable[[], None], stop: Callable[[], None]) -> None:
        self._at = self._clock()
        try:
            self._acked, pending = self._store.heartbeat(self._acked)
        except TransientError as exc:
            log.warning("heartbeat failed (next one in %.0f s): %s", HEARTBEAT_EVERY_S, exc)
            return
        for request_id, kind in pending:
            log.info("operator request %d: %s", request_id, kind)
            if kind == "stop":
                stop()
                return
            checkpoint()
            self._acked = request_id
        if pending:
            self._beat(checkpoint, stop)  # acknowledge now
