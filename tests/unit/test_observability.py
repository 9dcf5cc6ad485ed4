"""Metrics the runner reports (driven with fakes) and the probes' logic."""

import threading

import pytest
from prometheus_client import generate_latest

from connector.errors import CheckpointTimeout
from connector.observability import Health, Progress
from connector.protocol.checkpoint import CheckpointPolicy
from connector.runtime.retry import RestartStrategy
from connector.runtime.runner import Runner

from .fakes import Clock, FakeBackend, InstantStop, rec
from .test_retry import FailingOnce
from .test_runner import ScriptedSource, Sink, assign


def sample(runner, name, **labels):
    return runner.metrics.registry.get_sample_value(name, labels or None)


def test_runner_metrics():
    lose = lambda listener: listener.on_lost([("t", 1)]) and None
    source = ScriptedSource([assign(("t", 0), ("t", 1)), [rec(0), rec(1), rec(5, partition=1)], [rec(2)], lose])
    source.high = {("t", 0): 10, ("t", 1): 6}
    store = Sink()
    store.commit = FailingOnce(store.commit, after=False)
    clock = Clock()
    r = Runner(source, store, FakeBackend(), CheckpointPolicy(10**9, 3, 10**9), restart=RestartStrategy(2, 1, 1),
               stop=InstantStop(), clock=clock)
    r.start()
    r.step()  # assignment
    r.step()  # 3 records: full, commit fails once, retried
    assert sample(r, "eos_records_consumed_total") == 3
    assert sample(r, "eos_records_written_total") == 3
    assert sample(r, "eos_checkpoints_total", outcome="committed") == 1
    assert sample(r, "eos_checkpoints_total", outcome="failed") == 1
    assert sample(r, "eos_retries_total") == 1
    assert sample(r, "eos_commit_latency_seconds_count") == 1
    assert sample(r, "eos_assigned_partitions") == 2
    clock.now += 1  # gauges refresh at most once a second
    r.step()  # one more record buffered
    assert sample(r, "eos_consumer_lag_records", topic="t", partition="0") == 8  # 10 - next_offset 2
    assert sample(r, "eos_consumer_lag_records", topic="t", partition="1") == 0  # 6 - 6
    assert sample(r, "eos_buffered_records") == 1
    r.step()  # partition 1 lost
    assert sample(r, "eos_rebalances_total", kind="lost") == 1 and sample(r, "eos_assigned_partitions") == 1
    assert sample(r, "eos_consumer_lag_records", topic="t", partition="1") is None
    assert b"eos_checkpoints_total" in generate_latest(r.metrics.registry)


def test_timed_out_commits_are_counted_apart():
    source = ScriptedSource([assign(("t", 0)), [rec(0)]])
    store = Sink()
    commit, calls = store.commit, []

    def slow_once(snapshot, durable):
        calls.append(1)
        if len(calls) == 1:
            raise CheckpointTimeout("statement timeout")
        return commit(snapshot, durable)
    store.commit = slow_once
    r = Runner(source, store, FakeBackend(), CheckpointPolicy(10**9, 1, 10**9), restart=RestartStrategy(2, 1, 1),
               stop=InstantStop())
    r.start()
    r.step()
    r.step()
    assert sample(r, "eos_checkpoints_total", outcome="timed-out") == 1
    assert sample(r, "eos_checkpoints_total", outcome="committed") == 1


def test_health_probes():
    clock = Clock()
    health = Health(stuck_after_s=60, stale_after_s=5, clock=clock)
    assert health.live() == (True, "ok")
    assert health.ready() == (False, "no partitions assigned")
    health.assigned = 3
    assert health.ready() == (False, "no checkpoint completed yet")
    health.checkpointed()
    assert health.ready()[0]
    clock.now = 6
    assert health.ready() == (False, "last checkpoint 6s ago (limit 5s)")
    clock.now = 61
    assert health.live() == (False, "no progress for 61s (limit 60s)")
    health.progressed()
    assert health.live()[0]


def test_progress_line_while_a_backlog_drains():
    """At most one line per interval, only while there is lag: rate, lag and ETA."""
    progress = Progress(every_s=5)
    assert progress.line(0.0, lag=1000) is None  # the first sight of a backlog starts the clock
    progress.written += 200
    assert progress.line(3.0, lag=800) is None  # too soon
    progress.written += 300
    assert progress.line(5.0, lag=500) == "progress: 100 records/s written over the last 5s, lag 500 records, ETA 5s"
    assert progress.line(11.0, lag=500) == ("progress: 0 records/s written over the last 6s, lag 500 records, "
                                            "ETA unknown (nothing written)")
    assert progress.line(12.0, lag=0) is None and progress.line(30.0, lag=0) is None  # caught up: silent


def test_every_completed_checkpoint_is_observed_under_a_steady_backlog():
    """Each checkpoint the loop completes — most of them inside the next one's
    take_overlapped — is one observation of both histograms, the commit timed alone."""
    from .test_overlap import TimedStore

    class Timed(Sink, TimedStore):
        def commit(self, snapshot, durable=lambda: None):
            threading.Event().wait(0.02)  # the worker is still busy when the loop's step ends
            return super().commit(snapshot, durable)

    clock = Clock()
    store = Timed(clock, 0.25)
    batches = [[rec(i * 3 + j) for j in range(3)] for i in range(8)]
    r = Runner(ScriptedSource([assign(("t", 0)), *batches]), store, FakeBackend(), CheckpointPolicy(10**9, 3, 10**9),
               clock=clock)
    r.start()
    for _ in range(9):
        r.step()
    r.shutdown()
    assert len(store.committed) == 8 and store.rows == list(range(24))
    assert sample(r, "eos_checkpoints_total", outcome="committed") == 8
    assert sample(r, "eos_checkpoint_duration_seconds_count") == 8
    assert sample(r, "eos_commit_latency_seconds_count") == 8
    assert sample(r, "eos_commit_latency_seconds_sum") == pytest.approx(8 * 0.25)
