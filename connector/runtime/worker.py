"""The commit worker: steps 2-3 of the checkpoint in flight on a thread of its own, so
the loop reads on while the database commits; and another for step 2 alone, so the
snapshot is saved while step 3 writes (connector/protocol/coordinator.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class CommitWorker:
    """One thread at a time; `join` before the next `start`."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def start(self, work: Callable[[], None], name: str) -> None:
        assert self._thread is None, "join() the previous work first"
        self._thread = threading.Thread(target=work, daemon=True, name=name)
        self._thread.start()

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
