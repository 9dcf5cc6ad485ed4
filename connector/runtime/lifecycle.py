"""A replica's lifecycle: running, stop requested, failed, finished — and the watchdog
that holds it to SHUTDOWN_TIMEOUT_MS (I8) wherever the replica is when a stop is
requested (a commit waiting on a dead connection, a rebalance callback)."""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)


class Lifecycle:
    def __init__(self, shutdown_timeout_ms: int, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self._timeout_s = shutdown_timeout_ms / 1000.0
        self._finished = threading.Event()  # run() returned or raised: the watchdog stands down
        self.failed = False  # the loop raised: a revoke while closing commits nothing

    def request_stop(self) -> None:
        self.stop.set()

    def stopping(self) -> bool:
        return self.stop.is_set()

    def watch(self) -> None:
        threading.Thread(target=self._watch, daemon=True, name="shutdown-watchdog").start()

    def finished(self) -> None:
        self._finished.set()

    def _watch(self) -> None:
        self.stop.wait()
        if not self._finished.wait(self._timeout_s):
            log.error("shutdown took longer than SHUTDOWN_TIMEOUT_MS=%d; exiting now (nothing is lost: "
                      "uncommitted records are read again on restart)", int(self._timeout_s * 1000))
            logging.shutdown()
            os._exit(1)
