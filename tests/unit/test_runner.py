"""The runner's loop and rebalance handlers, with fakes handed to Runner(...)."""

import threading
from typing import ClassVar

import pytest

from connector.errors import MappingError
from connector.protocol.checkpoint import CheckpointPolicy
from connector.protocol.runs import runs_of
from connector.runtime.heartbeat import HEARTBEAT_EVERY_S
from connector.runtime.runner import POLL_TIMEOUT_S, Runner

from .fakes import Clock, FakeBackend, FakeOffsets, FakeStore, rec


class ScriptedSource(FakeOffsets):
    """Returns one scripted batch per poll; a callable in the script runs instead
    (a rebalance happening inside poll)."""

    def __init__(self, script):
        super().__init__()
        self.script = list(script)
        self.closed = False
        self.ends = {}

    def start(self, listener):
        self.listener = listener

    def poll(self, max_records, timeout_s):
        item = self.script.pop(0) if self.script else []
        if isinstance(item, dict):  # partitions read to their end: {tp: next record's offset}
            self.ends.update(item)
            return []
        return runs_of(item(self.listener) or [] if callable(item) else item)

    def take_ends(self):
        ends, self.ends = getattr(self, "ends", {}), {}
        return ends

    def close(self):
        self.closed = True

    def high_watermark(self, tp):
        return getattr(self, "high", {}).get(tp)


class Sink(FakeStore):
    requests: ClassVar[list] = []  # (id, kind) operator requests the heartbeat hands out

    def heartbeat(self, acked):
        acked = 0 if acked is None else acked
        self.acked = acked
        return acked, [(i, kind) for i, kind in self.requests if i > acked]

    def leave(self):
        self.left = True

    def start_from_savepoint(self):
        return {}

    def prepare(self):
        def mapper(record):
            if record.value == b"bad":
                raise MappingError(record.topic, record.partition, record.offset, "bad")
            return record.offset
        return mapper

    def close(self):
        pass


def runner(script, max_records=100, clock=None, stop=None):
    store, backend, source = Sink(), FakeBackend(), ScriptedSource(script)
    policy = CheckpointPolicy(interval_ms=10**9, max_records=max_records, max_bytes=10**9)
    r = Runner(source, store, backend, policy, stop=stop, clock=clock or Clock())
    r.start()
    return r, store, source


def assign(*tps):
    return lambda listener: listener.on_assigned(list(tps)) and None


def test_full_buffer_commits_mid_batch():
    """I5: a batch larger than CHECKPOINT_MAX_RECORDS is committed in bounded pieces."""
    r, store, _ = runner([assign(("t", 0)), [rec(i) for i in range(7)]], max_records=3)
    r.step()
    r.step()
    assert [len(s.ops) for s in store.committed.values()] == [3, 3]
    assert r.coordinator.state.records == 1


def test_mapping_error_commits_what_came_before_then_stops():
    """I9: records before the bad one land; the bad one's offset is not committed."""
    r, store, _ = runner([assign(("t", 0)), [rec(0), rec(1), rec(2, value=b"bad"), rec(3)]])
    r.step()
    with pytest.raises(MappingError):
        r.step()
    assert store.rows == [0, 1] and store.offsets == {("t", 0): 2}


def test_revoke_commits_then_releases_and_lost_drops():
    """I7: revoked partitions are committed first; lost ones are dropped uncommitted."""
    script = [assign(("t", 0), ("t", 1)), [rec(0), rec(0, partition=1)],
              lambda listener: listener.on_revoked([("t", 0)]),
              [rec(1, partition=1)], lambda listener: listener.on_lost([("t", 1)])]
    r, store, _ = runner(script)
    for _ in script:
        r.step()
    assert store.offsets == {("t", 0): 1, ("t", 1): 1}  # the revoke committed both partitions
    assert r.coordinator.state.records == 0 and r.coordinator.state.assigned == ()


def test_stop_takes_a_final_checkpoint_and_closes():
    """I8: after request_stop the loop ends, the buffer is committed, the source closed."""
    r, store, source = runner([assign(("t", 0)), [rec(0), rec(1)]])
    r.step()
    r.step()
    r.request_stop()
    r.shutdown()
    assert store.rows == [0, 1] and source.closed


def test_operator_requests_checkpoint_then_stop():
    """A `checkpoint` request commits what is buffered and is acknowledged; a `stop`
    request ends the loop (the final checkpoint and leaving acknowledge it)."""
    clock, stop = Clock(), threading.Event()
    r, store, source = runner([assign(("t", 0)), [rec(0), rec(1)], [], []], clock=clock, stop=stop)
    r.step()
    r.step()
    assert store.rows == []  # buffered, no trigger yet
    store.requests = [(5, "checkpoint")]
    clock.now += HEARTBEAT_EVERY_S
    r.step()
    assert store.rows == [0, 1] and store.acked == 5
    store.requests = [(5, "checkpoint"), (6, "stop")]
    clock.now += HEARTBEAT_EVERY_S
    r.step()
    assert stop.is_set() and store.acked == 5
    r.shutdown()
    assert store.left


def test_heartbeat_keeps_coming_under_a_steady_backlog():
    """Every batch fills a checkpoint, so a commit worker is nearly always running; an
    overdue heartbeat still goes out (a stale one would let `offsets reset` run beside
    a live replica)."""
    import threading

    class SlowSink(Sink):
        def commit(self, snapshot, durable=lambda: None):
            threading.Event().wait(0.05)  # the worker is still busy when the step ends
            return super().commit(snapshot, durable)

    source = ScriptedSource([assign(("t", 0))] + [[rec(i * 3 + j) for j in range(3)] for i in range(4)])
    clock, store = Clock(), SlowSink()
    r = Runner(source, store, FakeBackend(), CheckpointPolicy(interval_ms=10**9, max_records=3, max_bytes=10**9),
               clock=clock)
    r.start()
    r.step()
    r.step()
    assert r.coordinator.busy()
    store.acked = None  # forget the first heartbeat
    clock.now += HEARTBEAT_EVERY_S  # overdue
    r.step()
    assert store.acked == 0


def test_a_stop_ends_the_replica_within_the_shutdown_timeout_even_inside_a_hung_commit(monkeypatch):
    """I8 from the stop request on: a commit that never returns (a dead connection) cannot
    keep the replica alive past SHUTDOWN_TIMEOUT_MS."""
    polled, release, exited = threading.Event(), threading.Event(), threading.Event()
    monkeypatch.setattr("connector.runtime.lifecycle.os._exit", lambda code: exited.set())

    class HungSink(Sink):
        def commit(self, snapshot, durable=lambda: None):
            release.wait(10)
            return super().commit(snapshot, durable)

    def second_batch(listener):
        polled.set()  # from here the loop's step cannot end before the hung commit does
        return [rec(1)]

    stop = threading.Event()
    # the second full buffer waits, on the loop's own thread, for the first one's hung commit
    r = Runner(ScriptedSource([assign(("t", 0)), [rec(0)], second_batch]), HungSink(), FakeBackend(),
               CheckpointPolicy(interval_ms=10**9, max_records=1, max_bytes=10**9), shutdown_timeout_ms=200, stop=stop)
    worker = threading.Thread(target=r.run, daemon=True)
    worker.start()
    try:
        assert polled.wait(5)
        stop.set()
        assert exited.wait(2), "the watchdog did not end the replica"
    finally:
        release.set()
        worker.join(5)


def test_records_fetched_before_a_retried_seek_takes_are_not_buffered():
    """I11: a fenced partition whose seek failed buffers nothing of the batch in hand when
    the retried seek takes; only what is read after it."""
    r, store, source = runner([assign(("t", 0)), [rec(0), rec(1)]])
    r.step()
    r.step()
    store.offsets[("t", 0)] = 1  # another owner committed [0, 1): this replica is fenced
    source.failing.add(("t", 0))
    r.coordinator.checkpoint_now("t")
    assert r.coordinator.state.waiting_for_position == (("t", 0),)
    source.failing.clear()
    source.script = [[rec(2), rec(3)], [rec(1), rec(2)]]  # fetched from where it stood; then from the seek
    r.step()
    assert r.coordinator.state.records == 0 and r.coordinator.state.waiting_for_position == ()
    assert source.seeks[-1] == {("t", 0): 1}
    r.step()
    r.coordinator.checkpoint_now("t")
    assert store.offsets == {("t", 0): 3} and store.rows == [1, 2]


def test_the_end_of_a_partition_past_a_commit_marker_is_its_next_offset():
    """Under read_committed a transaction's commit marker follows its last record: the
    partition's end (the offset its next record will have) is committed as next_offset,
    so lag reaches 0; with records buffered it rides their checkpoint, alone it is a
    checkpoint of no rows. An end not past the position changes nothing."""
    r, store, _ = runner([assign(("t", 0), ("t", 1)), [rec(0), rec(1), rec(2)], {("t", 0): 4, ("t", 1): 7}])
    r.step()
    r.step()
    r.step()
    r.request_stop()
    r.shutdown()
    assert store.rows == [0, 1, 2] and store.offsets == {("t", 0): 4, ("t", 1): 7}


def test_an_end_alone_waits_for_the_interval_then_commits():
    store, backend = Sink(), FakeBackend()
    clock = Clock()
    source = ScriptedSource([assign(("t", 0)), [rec(0)], [], {("t", 0): 2}, [], []])
    r = Runner(source, store, backend, CheckpointPolicy(interval_ms=1000, max_records=100, max_bytes=10**9),
               clock=clock)
    r.start()
    for _ in range(2):
        r.step()
    clock.now += 2
    r.step()
    assert store.offsets == {("t", 0): 1}  # the record's checkpoint, on the interval
    r.step()  # the end arrives: nothing is due before the interval
    assert store.offsets == {("t", 0): 1} and not r.coordinator.state.empty()
    clock.now += 2
    r.step()
    r.step()
    assert store.offsets == {("t", 0): 2} and store.rows == [0] and r.coordinator.state.empty()


def test_an_empty_partition_read_to_its_end_commits_nothing():
    r, store, _ = runner([assign(("t", 0), ("t", 1)), [rec(0)], {("t", 0): 1, ("t", 1): 0}])
    for _ in range(3):
        r.step()
    r.request_stop()
    r.shutdown()
    assert store.offsets == {("t", 0): 1}


class TimedSource(ScriptedSource):
    """Records each poll's timeout, and advances the clock by it when nothing comes (a
    poll waiting for a whole batch waits its timeout out)."""

    def __init__(self, script, clock):
        super().__init__(script)
        self.clock, self.timeouts = clock, []

    def poll(self, max_records, timeout_s):
        self.timeouts.append(timeout_s)
        runs = super().poll(max_records, timeout_s)
        if not runs:
            self.clock.now += timeout_s
        return runs


def test_a_poll_waits_no_longer_than_the_interval_has_left():
    """At a low rate each poll waits its whole timeout: the one that would end past the
    interval is cut to end on it, so the checkpoint is taken on time, not up to
    POLL_TIMEOUT_S late."""
    clock = Clock()
    source = TimedSource([assign(("t", 0)), [rec(0)], *[[]] * 12], clock)
    store = Sink()
    r = Runner(source, store, FakeBackend(), CheckpointPolicy(interval_ms=1050, max_records=100, max_bytes=10**9),
               clock=clock)
    r.start()
    for _ in range(14):
        r.step()
        if store.offsets:
            break
    assert source.timeouts[:2] == [POLL_TIMEOUT_S, POLL_TIMEOUT_S]  # nothing buffered yet: the usual wait
    assert source.timeouts[-1] == pytest.approx(0.05)  # what was left of the interval after ten full waits
    assert clock.now == pytest.approx(1.05) and store.offsets == {("t", 0): 1}  # on the interval, not at 1.1 s
