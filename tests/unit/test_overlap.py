"""The overlapped checkpoint: the commit worker runs steps 2-3 while the loop reads on;
checkpoints still complete strictly in ID order, one at a time, and a failure or a
fence in the worker is handled exactly as in the synchronous protocol."""

import threading

import pytest

from connector.errors import TransientError
from connector.models import CommitOutcome
from connector.protocol.checkpoint import CheckpointPolicy
from connector.protocol.coordinator import CheckpointCoordinator
from connector.runtime.worker import CommitWorker

from .fakes import Clock, FakeBackend, FakeOffsets, FakeStore, add, add_many, identity, rec

POLICY = CheckpointPolicy(interval_ms=1000, max_records=5, max_bytes=10_000)


class GatedStore(FakeStore):
    """A store whose commits wait for the test to open the gate; it records the order."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.order: list[int] = []
        self.fail_next = False

    def commit(self, snapshot, durable=lambda: None):
        assert self.gate.wait(10), "the test never opened the gate"
        self.order.append(snapshot.checkpoint_id)
        if self.fail_next:
            self.fail_next = False
            raise TransientError("connection lost")
        return super().commit(snapshot, durable)


def make(store):
    backend, offsets = FakeBackend(), FakeOffsets()
    return CheckpointCoordinator(store, backend, offsets, identity, POLICY, clock=Clock(), worker=CommitWorker()), backend, offsets


def test_reading_goes_on_while_the_commit_runs_and_commits_stay_in_order():
    store = GatedStore()
    coord, backend, offsets = make(store)
    coord.assign([("t", 0)])
    add_many(coord, [rec(0), rec(1)])
    assert coord.take_overlapped("interval") is None
    assert coord.busy() and store.rows == []
    add_many(coord, [rec(2), rec(3)])  # read on into checkpoint 2 while 1 is committing
    store.gate.set()
    assert coord.take_overlapped("interval") is None  # settles 1 first, then seals 2
    assert offsets.commits == [{("t", 0): 2}]  # step 4 of 1 ran in the loop, before 2 was sealed
    result = coord.finish_in_flight()
    assert result.checkpoint_id == 2 and result.outcome is CommitOutcome.COMMITTED
    assert store.order == [1, 2] and store.rows == [0, 1, 2, 3] and store.offsets == {("t", 0): 4}
    assert backend.discarded == [1, 2] and coord.settled()


def test_a_failed_commit_surfaces_in_the_loop_and_is_finished_before_the_next():
    """A transient error in the worker is raised by settle(); the next call re-commits the
    same checkpoint (steps 3-5: it is already durable) before anything else."""
    store = GatedStore()
    coord, backend, _ = make(store)
    coord.assign([("t", 0)])
    add_many(coord, [rec(0), rec(1)])
    store.fail_next = True
    store.gate.set()
    coord.take_overlapped("interval")
    add_many(coord, [rec(2)])
    with pytest.raises(TransientError):
        coord.take_overlapped("interval")
    assert backend.pending()[0].checkpoint_id == 1  # still durable, still in flight
    coord.take_overlapped("interval")  # the retry: 1 again, then 2 sealed
    coord.finish_in_flight()
    assert store.order == [1, 1, 2] and store.rows == [0, 1, 2]


def test_a_fence_found_in_flight_drops_what_was_read_past_it():
    """I3 with overlap: records buffered on top of a fenced checkpoint are dropped, the
    partition resumes from the database's offset, and the loop learns which partitions
    to stop taking from the poll batch in hand."""
    store = GatedStore()
    coord, _, offsets = make(store)
    coord.assign([("t", 0), ("t", 1)])
    add_many(coord, [rec(0), rec(1), rec(0, partition=1)])
    coord.take_overlapped("interval")
    add_many(coord, [rec(2), rec(1, partition=1)])  # on top of checkpoint 1
    store.offsets[("t", 0)] = 5  # another owner committed [0, 5) meanwhile
    store.gate.set()
    result = coord.finish_in_flight()
    assert result.outcome is CommitOutcome.FENCED and store.rows == []
    # t[1] has no offsets row: it is read again from its fenced range's first offset (I11)
    assert coord.refetched == {("t", 0), ("t", 1)} and offsets.seeks == [{("t", 0): 5, ("t", 1): 0}]
    assert coord.state.empty()  # both partitions' later records dropped with it
    assert not add(coord, rec(4)) and add(coord, rec(5))
    assert add(coord, rec(0, partition=1))


class TimedStore(FakeStore):
    """A store whose every commit takes `seconds` of the clock."""

    def __init__(self, clock, seconds):
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def commit(self, snapshot, durable=lambda: None):
        self.clock.now += self.seconds
        return super().commit(snapshot, durable)


def test_a_commit_is_timed_when_it_returns_not_when_the_loop_reads_its_result():
    """The commit's latency is step 3's own duration, even when the loop finishes the
    checkpoint long after; the checkpoint's duration runs from sealing to step 5."""
    clock = Clock()
    store = TimedStore(clock, 0.05)
    coord = CheckpointCoordinator(store, FakeBackend(), FakeOffsets(), identity, POLICY, clock)  # inline worker
    coord.assign([("t", 0)])
    add_many(coord, [rec(0), rec(1)])
    coord.take_overlapped("interval")  # steps 2-3 ran, inline
    clock.now += 3.0  # the loop reads on for 3 s before it finishes the checkpoint
    result = coord.finish_in_flight()
    assert result.commit_s == pytest.approx(0.05)
    assert result.duration_s == pytest.approx(3.05)
