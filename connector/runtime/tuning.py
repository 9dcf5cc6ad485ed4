"""Interpreter tuning for the consumer loop: the GIL hand-over and the garbage collector."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

SWITCH_INTERVAL_S = 0.0005  # how long the loop's thread may hold the GIL while the commit worker waits for it
GC_YOUNG_THRESHOLD = 500_000  # objects allocated, net, between young collections: a safety net
GC_EVERY_S = 60.0  # a full collection of cyclic garbage this often instead


def tune_interpreter() -> None:
    """The commit worker needs the GIL for a moment between each chunk COPY sends;
    Python's default 5 ms hand-over made a 100 000-row commit take 4x as long.

    The loop holds up to two checkpoints of Kafka messages, which the collector tracks;
    each young collection walked them all (~17 ms each, 6 % of the loop at a threshold of
    50 000; at the default 700, a fifth). Messages, rows and ops hold no cycles, so cyclic
    garbage is rare here (exceptions, driver internals): `Collector` collects it every
    GC_EVERY_S, and the raised threshold is only a safety net."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


class Collector:
    """A full garbage collection every GC_EVERY_S of `clock`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._at = clock()

    def collect_if_due(self) -> None:
        now = self._clock()
        if now - self._at >= GC_EVERY_S:
            self._at = now
            gc.collect()
