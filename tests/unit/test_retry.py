"""RESTART_STRATEGY parsing, the backoff schedule, and resuming a checkpoint that
failed part-way (the retry must neither lose nor repeat a record)."""

import pytest

from connector.errors import RetriesExhausted, TransientError
from connector.protocol.checkpoint import CheckpointPolicy
from connector.runtime.retry import Interrupted, RestartStrategy, parse_duration_ms, retrying
from connector.runtime.runner import Runner

from .fakes import FakeBackend, InstantStop, add, rec
from .test_checkpoint import make
from .test_runner import ScriptedSource, Sink, assign


@pytest.mark.parametrize("text, expected", [
    ("attempts=3,initial=100ms,max=1s", RestartStrategy(3, 100, 1000)),
    ("attempts=0", RestartStrategy(0, 500, 30_000)),
    ("none", RestartStrategy(0, 500, 30_000)),
    (" initial=2s , max=1m ", RestartStrategy(10, 2000, 60_000)),
])
def test_parse(text, expected):
    assert RestartStrategy.parse(text) == expected


@pytest.mark.parametrize("text", ["attempts=x", "tries=3", "initial=5q", "initial=2s,max=1s", "attempts=1,attempts=2"])
def test_parse_refuses(text):
    with pytest.raises(ValueError):
        RestartStrategy.parse(text)


def test_durations():
    assert [parse_duration_ms(t) for t in ("250", "250ms", "3s", "2m")] == [250, 250, 3000, 120_000]


def test_delays_double_up_to_the_maximum():
    assert list(RestartStrategy(6, 500, 3000).delays_s()) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


class Flaky:
    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientError(f"boom {self.calls}")
        return "done"


def test_retrying_succeeds_within_the_budget():
    waits = []
    fn = Flaky(3)
    assert retrying(fn, RestartStrategy(3, 10, 40), "x", waits.append) == "done"
    assert waits == [0.01, 0.02, 0.04] and fn.calls == 4


def test_retrying_gives_up_with_the_cause():
    with pytest.raises(RetriesExhausted, match=r"x failed 3 time.*boom 3"):
        retrying(Flaky(5), RestartStrategy(2, 10, 40), "x", lambda _: None)


def test_interrupted_wait_raises():
    with pytest.raises(Interrupted):
        retrying(Flaky(5), RestartStrategy(2, 10, 40), "x", lambda _: True)


class FailingOnce:
    """Wraps a store or backend method: the first call fails after (or before) doing its work."""

    def __init__(self, fn, after):
        self.fn, self.after, self.failed = fn, after, False

    def __call__(self, *args):
        if not self.failed:
            self.failed = True
            if self.after:
                self.fn(*args)  # the work was done; only the acknowledgement was lost
            raise TransientError("connection lost")
        return self.fn(*args)


@pytest.mark.parametrize("target, after", [("next_checkpoint_id", False), ("save", False), ("save", True),
                                           ("commit", False), ("commit", True), ("discard", False)])
def test_checkpoint_resumes_after_a_transient_failure(target, after):
    """A failure at any step, calling checkpoint() again finishes the same checkpoint:
    every record committed once, offsets at the end, no record buffered twice."""
    coord, store, backend, offsets, _ = make()
    holder = backend if target in ("save", "discard") else store
    setattr(holder, target, FailingOnce(getattr(holder, target), after))
    coord.assign([("t", 0)])
    for i in range(3):
        add(coord, rec(i))
    with pytest.raises(TransientError):
        coord.checkpoint_now("interval")
    add(coord, rec(3))
    coord.checkpoint_now("interval")
    assert sorted(store.rows) == [0, 1, 2, 3]
    assert store.offsets == {("t", 0): 4} and backend.saved == {}


def test_runner_retries_a_failed_commit_without_losing_the_buffer():
    """The loop's checkpoint waits on the stop event (so SIGTERM ends the wait)."""
    source = ScriptedSource([assign(("t", 0)), [rec(0), rec(1)]])
    store = Sink()
    store.commit = FailingOnce(store.commit, after=False)
    stop = InstantStop()  # records the backoff instead of sleeping
    r = Runner(source, store, FakeBackend(), CheckpointPolicy(10**9, 2, 10**9),
               restart=RestartStrategy(2, 10, 10), stop=stop)
    r.start()
    r.step()
    r.step()  # the buffer is full: checkpoint, whose commit fails once and is retried
    assert store.rows == [0, 1] and store.offsets == {("t", 0): 2}
    assert stop.waits == [0.01]


def test_commit_outcome_of_a_lost_acknowledgement_is_already_committed():
    coord, store, backend, offsets, _ = make()
    store.commit = FailingOnce(store.commit, after=True)
    coord.assign([("t", 0)])
    add(coord, rec(0))
    with pytest.raises(TransientError):
        coord.checkpoint_now("interval")
    assert coord.checkpoint_now("interval") is None  # nothing new buffered
    assert store.rows == [0] and offsets.commits == [{("t", 0): 1}]
