"""Bounded exponential backoff for transient failures (RESTART_STRATEGY).

A transient failure (connection lost, server restarting, deadlock, serialization
failure, lock or statement timeout) is retried with delays that double from `initial`
up to `max`, at most `attempts` times in a row; the count starts again after a success.
Exhausting it raises `RetriesExhausted` with the last cause, and the replica exits
non-zero: everything it had not committed is read again by the next replica.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from connector.errors import RetriesExhausted, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)(ms|s|m)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, None: 1}


def parse_duration_ms(text: str) -> int:
    """`250ms`, `2s`, `1m`, or a bare number of milliseconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration (e.g. 500ms, 2s, 1m)")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True)
class RestartStrategy:
    attempts: int = 10
    initial_ms: int = 500
    max_ms: int = 30_000

    FORMAT = "none, or attempts=<n>,initial=<duration>,max=<duration> (e.g. attempts=10,initial=500ms,max=30s)"

    @classmethod
    def parse(cls, text: str) -> RestartStrategy:
        text = text.strip()
        if text.lower() == "none":
            return cls(attempts=0)
        fields: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip().lower()
            if not sep or name not in ("attempts", "initial", "max") or name in fields:
                raise ValueError(f"unexpected {part!r}; expected {cls.FORMAT}")
            if name != "attempts":
                fields[name] = parse_duration_ms(value)
            elif value.strip().isdigit():
                fields[name] = int(value)
            else:
                raise ValueError(f"attempts={value!r} is not a whole number; expected {cls.FORMAT}")
        strategy = cls(fields.get("attempts", cls.attempts), fields.get("initial", cls.initial_ms),
                       fields.get("max", cls.max_ms))
        if strategy.attempts < 0 or strategy.initial_ms < 1 or strategy.max_ms < strategy.initial_ms:
            raise ValueError(f"attempts must be >= 0 and 1ms <= initial <= max; expected {cls.FORMAT}")
        return strategy

    def delays_s(self) -> Iterator[float]:
        delay = self.initial_ms
        for _ in range(self.attempts):
            yield delay / 1000.0
            delay = min(delay * 2, self.max_ms)

    def __str__(self) -> str:
        return f"attempts={self.attempts},initial={self.initial_ms}ms,max={self.max_ms}ms"


DEFAULT_RESTART = RestartStrategy()


class Interrupted(Exception):
    """The wait between two attempts was cut short (the replica is stopping)."""


def retrying(fn: Callable[[], T], strategy: RestartStrategy, doing: str,
             wait: Callable[[float], bool | None],
             on_failure: Callable[[TransientError], None] | None = None) -> T:
    """`fn()`, retried on TransientError per `strategy`. `wait(seconds)` sleeps between
    attempts; a true result means "stop waiting" and raises Interrupted. `on_failure`
    sees every transient failure (for metrics)."""
    delays = strategy.delays_s()
    failures = 0
    while True:
        try:
            return fn()
        except TransientError as exc:
            failures += 1
            if on_failure is not None:
                on_failure(exc)
            delay = next(delays, None)
            if delay is None:
                raise RetriesExhausted(f"{doing} failed {failures} time(s) in a row (RESTART_STRATEGY="
                                       f"{strategy}); last error: {exc}") from exc
            log.warning("%s failed (%s); retry %d of %d in %.1f s", doing, exc, failures, strategy.attempts, delay)
            if wait(delay):
                raise Interrupted(doing) from exc


class Retries:
    """The replica's two ways to retry: in the loop, where a stop request ends a wait
    (Interrupted: the final checkpoint resumes the work), and bounded — inside rebalance
    callbacks and the final checkpoint — where waits go on through a stop request, bounded
    by the strategy and SHUTDOWN_TIMEOUT_MS. `on_retry` sees every transient failure."""

    def __init__(self, strategy: RestartStrategy, stop: threading.Event,
                 on_retry: Callable[[TransientError], None]) -> None:
        self._strategy, self._stop, self._on_retry = strategy, stop, on_retry

    def in_loop(self, fn: Callable[[], T], doing: str,
                on_failure: Callable[[TransientError], None] | None = None) -> T:
        return retrying(fn, self._strategy, doing, self._stop.wait, self._failed(on_failure))

    def bounded(self, fn: Callable[[], T], doing: str,
                on_failure: Callable[[TransientError], None] | None = None) -> T:
        return retrying(fn, self._strategy, doing, _sleep, self._failed(on_failure))

    def _failed(self, on_failure: Callable[[TransientError], None] | None) -> Callable[[TransientError], None]:
        def failed(exc: TransientError) -> None:
            self._on_retry(exc)
            if on_failure is not None:
                on_failure(exc)
        return failed


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
