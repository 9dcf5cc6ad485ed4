"""The deterministic fault hook used by the crash tests.

`CONNECTOR_FAULT=<step>:<n>[:<action>]` makes the process act at the n-th time it
reaches the named protocol step (counting from 1 within this process): `kill`
(default) sends itself SIGKILL — no cleanup, no flush, exactly like a power cut —
`stop` sends itself SIGSTOP, freezing it the way a paused VM or a long GC does, and
`raise` raises `InjectedFault` there: the replica dies as from a crash but in-process,
so a test can crash one and start the next in the same process within a second.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Every named step, in protocol order (DESIGN.md, "The commit transaction").
STEPS = (
    "before_snapshot",  # a checkpoint was triggered, nothing frozen yet
    "mid_snapshot_write",  # the backend wrote the snapshot but has not made it durable
    "after_snapshot_durable",  # snapshot_state(C) done, no database work yet
    "after_offsets_locked",  # inside the transaction: offsets locked and compared
    "after_rows_written",  # inside the transaction: rows and offsets written, the snapshot durable, no COMMIT
    "after_db_commit",  # COMMIT returned, Kafka offsets not yet committed
    "after_kafka_commit",  # Kafka offsets committed, snapshot not yet discarded
    "after_discard",  # the checkpoint is complete
    "in_revoke",  # inside the partition-revoke callback, before its checkpoint
)
ACTIONS = ("kill", "stop", "raise")


@dataclass(frozen=True)
class FaultSpec:
    step: str
    occurrence: int
    action: str = "kill"

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        parts = text.split(":")
        if len(parts) not in (2, 3) or parts[0] not in STEPS or not parts[1].isdigit():
            raise ValueError(f"expected <step>:<n>[:kill|stop|raise] with step one of {', '.join(STEPS)}")
        action = parts[2] if len(parts) == 3 else "kill"
        if action not in ACTIONS or int(parts[1]) < 1:
            raise ValueError("n must be >= 1 and the action kill, stop or raise")
        return cls(parts[0], int(parts[1]), action)

    def __str__(self) -> str:
        return f"{self.step}:{self.occurrence}:{self.action}"


class InjectedFault(BaseException):
    """Raised by the `raise` action: a BaseException, so no handler meant for errors
    catches it on its way out of the replica, as nothing survives a crash."""


class FaultHook:
    """Counts how often each step is reached and fires the configured fault once."""

    def __init__(self, spec: FaultSpec | None = None) -> None:
        self._spec = spec
        self._seen: Counter[str] = Counter()

    def reached(self, step: str) -> None:
        self._seen[step] += 1
        spec = self._spec
        if spec is None or spec.step != step or self._seen[step] != spec.occurrence:
            return
        log.warning("fault hook: %s at %s #%d", spec.action, step, spec.occurrence)
        if spec.action == "raise":
            raise InjectedFault(f"{step} #{spec.occurrence}")
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL if spec.action == "kill" else signal.SIGSTOP)


NO_FAULTS = FaultHook()
