"""The checkpoint protocol with fakes: triggers, ordering, idempotency, fencing."""

import pytest

from connector.models import CommitOutcome
from connector.protocol.checkpoint import CheckpointPolicy
from connector.protocol.coordinator import CheckpointCoordinator
from connector.protocol.faults import FaultHook, FaultSpec

from .fakes import Clock, FakeBackend, FakeOffsets, FakeStore, add, add_many, identity, rec

POLICY = CheckpointPolicy(interval_ms=1000, max_records=5, max_bytes=10_000)


def make(policy=POLICY, store=None, backend=None):
    store, backend, offsets, clock = store or FakeStore(), backend or FakeBackend(), FakeOffsets(), Clock()
    coord = CheckpointCoordinator(store, backend, offsets, identity, policy, clock=clock)
    return coord, store, backend, offsets, clock


@pytest.mark.parametrize("records, nbytes, elapsed, expected", [
    (0, 0, 10_000, None),  # nothing buffered: never
    (1, 10, 999, None),
    (1, 10, 1000, "interval"),  # I6: time alone triggers
    (5, 10, 0, "records"),  # I5
    (1, 10_000, 0, "bytes"),  # I5
])
def test_policy(records, nbytes, elapsed, expected):
    assert POLICY.due(elapsed, 0, records, nbytes) == expected


@pytest.mark.parametrize("records, nbytes, expected", [
    (0, 0, None),  # nothing buffered: never
    (1, 10, "caught-up"),  # before the interval
    (5, 10, "records"),  # a full buffer is full first
])
def test_a_drained_backlog_triggers_at_once(records, nbytes, expected):
    assert POLICY.due(0, 0, records, nbytes, backlog_drained=True) == expected


def test_the_rest_of_a_backlog_is_taken_once_every_partition_is_read_to_its_end():
    """After a checkpoint its buffer's size triggered, what is left is taken as soon as
    the consumer has read every partition to its end, not an interval later; a record
    after an end, or a partition not yet read to one, keeps it waiting."""
    coord, store, *_ = make()
    coord.assign([("t", 0), ("t", 1)])
    add_many(coord, [rec(o) for o in range(5)])
    assert coord.due() == "records"
    coord.checkpoint_now("records")
    add(coord, rec(5))
    coord.state.reached_end(("t", 0), 6)
    assert coord.due() is None  # partition 1 not read to its end yet
    coord.state.reached_end(("t", 1), 0)
    assert coord.due() == "caught-up"
    add(coord, rec(6))  # came after partition 0's end: there may be more
    assert coord.due() is None
    coord.state.reached_end(("t", 0), 7)
    assert coord.due() == "caught-up"
    coord.checkpoint_now("caught-up")
    assert store.rows == [0, 1, 2, 3, 4, 5, 6]


def test_a_stream_that_never_fills_the_buffer_keeps_the_interval():
    """Read to its end after a checkpoint the interval (or anything but a full buffer)
    triggered, the buffer waits for the interval: a steady stream's cadence is unchanged."""
    coord, *_, clock = make()
    coord.assign([("t", 0)])
    add(coord, rec(0))
    coord.state.reached_end(("t", 0), 1)
    assert coord.due() is None
    clock.now = 1.0
    assert coord.due() == "interval"
    coord.checkpoint_now("interval")
    add(coord, rec(1))
    coord.state.reached_end(("t", 0), 2)
    assert coord.due() is None
    add_many(coord, [rec(o) for o in range(2, 6)])
    coord.checkpoint_now("records")  # a backlog: its end is reached only after a record read on
    add(coord, rec(6))
    assert coord.due() is None
    coord.state.reached_end(("t", 0), 7)
    assert coord.due() == "caught-up"
    coord.checkpoint_now("caught-up")
    add(coord, rec(7))  # after a checkpoint of a drained backlog: the interval again
    coord.state.reached_end(("t", 0), 8)
    assert coord.due() is None


def test_the_time_left_before_the_interval_fires():
    """What the loop waits for at most before it checks `due` again: none while nothing is
    buffered, the interval's rest once a record is, zero once it is due."""
    coord, *_, clock = make()
    coord.assign([("t", 0)])
    clock.now = 0.4
    assert coord.due_in_s() is None
    add(coord, rec(0))
    assert coord.due_in_s() == pytest.approx(0.6)  # from when the checkpoint opened, not from the record
    clock.now = 1.5
    assert coord.due_in_s() == 0 and coord.due() == "interval"
    coord.checkpoint_now("interval")
    assert coord.due_in_s() is None


def test_interval_trigger_without_new_records():
    """I6: a buffered record is checkpointed once the interval passes, with no new input."""
    coord, store, *_ , clock = make()
    coord.assign([("t", 0)])
    add(coord, rec(0))
    assert coord.due() is None
    clock.now = 1.0
    assert coord.due() == "interval"
    result = coord.checkpoint_now("interval")
    assert result.outcome is CommitOutcome.COMMITTED and store.rows == [0]


def test_checkpoint_order_and_offsets():
    """Durable before commit; Kafka offsets = the range ends; snapshot discarded after."""
    coord, store, backend, offsets, _ = make()
    coord.assign([("t", 0), ("t", 1)])
    for r in (rec(0), rec(1), rec(7, partition=1)):
        add(coord, r)
    result = coord.checkpoint_now("test")
    assert result.checkpoint_id == 1 and result.records == 3
    assert store.offsets == {("t", 0): 2, ("t", 1): 8}
    assert offsets.commits == [{("t", 0): 2, ("t", 1): 8}]
    assert backend.saved == {} and backend.discarded == [1]


def test_empty_checkpoint_takes_no_id():
    coord, store, *_ = make()
    coord.assign([("t", 0)])
    assert coord.checkpoint_now("interval") is None
    assert store.next_checkpoint_id() == 1


def test_stale_records_are_refused():
    """A record before the partition's position, or for an unowned partition, is not buffered."""
    coord, store, *_ = make()
    store.offsets[("t", 0)] = 10
    coord.assign([("t", 0)])
    assert not add(coord, rec(9))
    assert not add(coord, rec(0, partition=3))
    assert add(coord, rec(10)) and add(coord, rec(12))  # gaps (compaction, markers) are fine
    assert not add(coord, rec(12))
    coord.checkpoint_now("t")
    assert store.rows == [10, 12] and store.offsets[("t", 0)] == 13


def test_range_start_is_the_position_not_the_first_offset():
    """After a gap, the compare-and-set still expects the database's next_offset."""
    coord, store, *_ = make()
    store.offsets[("t", 0)] = 100
    coord.assign([("t", 0)])
    add(coord, rec(105))
    assert coord.checkpoint_now("t").outcome is CommitOutcome.COMMITTED
    assert store.offsets[("t", 0)] == 106


def test_recommit_of_pending_snapshot_is_idempotent():
    """A crash after the database commit: recovery re-commits the pending snapshot as a no-op."""
    store, backend = FakeStore(), FakeBackend()
    coord, *_ = make(store=store, backend=backend)
    coord.assign([("t", 0)])
    add(coord, rec(0))
    snapshot = coord.state.snapshot(store.next_checkpoint_id())
    backend.save(snapshot)
    assert store.commit(snapshot, lambda: None).outcome is CommitOutcome.COMMITTED  # ...then the process died
    restarted, *_ = make(store=store, backend=backend)
    results = restarted.recover()
    assert [r.outcome for r in results] == [CommitOutcome.ALREADY_COMMITTED]
    assert store.rows == [0] and backend.pending() == []


def test_recovery_commits_pending_snapshots_in_id_order():
    """Two durable, uncommitted snapshots commit oldest first: the second builds on the first."""
    store, backend = FakeStore(), FakeBackend()
    coord, *_ = make(store=store, backend=backend)
    coord.assign([("t", 0)])
    for offsets in ((0, 1), (2,)):
        for o in offsets:
            add(coord, rec(o))
        backend.save(coord.state.snapshot(store.next_checkpoint_id()))
    backend.saved = dict(reversed(list(backend.saved.items())))
    restarted, *_ = make(store=store, backend=backend)
    outcomes = [r.outcome for r in restarted.recover()]
    assert outcomes == [CommitOutcome.COMMITTED, CommitOutcome.COMMITTED]
    assert store.rows == [0, 1, 2] and store.offsets[("t", 0)] == 3


def test_fenced_snapshot_is_dropped_and_partitions_reread():
    """I3: another owner moved the offset; nothing is written, the partition seeks back."""
    coord, store, backend, offsets, _ = make()
    coord.assign([("t", 0)])
    add(coord, rec(0))
    add(coord, rec(1))
    store.offsets[("t", 0)] = 5  # the new owner committed [0, 5)
    result = coord.checkpoint_now("t")
    assert result.outcome is CommitOutcome.FENCED
    assert store.rows == [] and offsets.commits == [] and backend.pending() == []
    assert offsets.seeks == [{("t", 0): 5}]
    assert not add(coord, rec(4)) and add(coord, rec(5))


def test_release_drops_buffer():
    """I7 (lost): released partitions' records are never committed."""
    coord, store, *_ = make()
    coord.assign([("t", 0), ("t", 1)])
    add(coord, rec(0))
    add(coord, rec(0, partition=1))
    coord.release([("t", 0)])
    assert coord.state.records == 1
    coord.checkpoint_now("t")
    assert store.offsets == {("t", 1): 1}


def test_full_flag_bounds_the_buffer():
    """I5: the coordinator reports full at CHECKPOINT_MAX_RECORDS."""
    coord, *_ = make()
    coord.assign([("t", 0)])
    for o in range(4):
        add(coord, rec(o))
    assert not coord.full()
    add(coord, rec(4))
    assert coord.full()


def test_fault_hook_fires_on_nth_occurrence(monkeypatch):
    fired = []
    monkeypatch.setattr("os.kill", lambda pid, sig: fired.append(sig))
    hook = FaultHook(FaultSpec("after_db_commit", 2))
    coord = CheckpointCoordinator(FakeStore(), FakeBackend(), FakeOffsets(), identity, POLICY, Clock(), faults=hook)
    coord.assign([("t", 0)])
    for o in range(3):
        add(coord, rec(o))
        coord.checkpoint_now("t")
    assert len(fired) == 1


def test_a_fenced_partition_without_an_offsets_row_is_read_again_from_its_fenced_range():
    """I11: checkpoint 1 holds t[0..2] with no offsets rows yet; another commit creates rows
    for t[0] and t[1] only, so checkpoint 1 is fenced. t[2] still has no row: it must be read
    again from the first offset of its fenced range, not from wherever the consumer stands."""
    coord, store, _, offsets, _ = make(policy=CheckpointPolicy(1000, 100, 10_000))
    coord.assign([("t", 0), ("t", 1), ("t", 2)])
    add_many(coord, [rec(o, partition=p) for p in range(3) for o in range(3, 6)])
    store.offsets.update({("t", 0): 3, ("t", 1): 3})  # a re-committed snapshot of [?, 3) of t[0] and t[1]
    assert coord.checkpoint_now("t").outcome is CommitOutcome.FENCED
    assert offsets.seeks == [{("t", 0): 3, ("t", 1): 3, ("t", 2): 3}]
    assert coord.state.position(("t", 2)) == 3
    assert not add(coord, rec(2, partition=2))  # before the fenced range: stale
    add_many(coord, [rec(o, partition=p) for p in range(3) for o in range(3, 6)])  # read again
    result = coord.checkpoint_now("t")
    assert result.outcome is CommitOutcome.COMMITTED
    assert store.offsets == {("t", 0): 6, ("t", 1): 6, ("t", 2): 6}
    assert sorted(store.rows) == [3, 3, 3, 4, 4, 4, 5, 5, 5]


def test_a_partition_whose_seek_fails_buffers_nothing_until_a_seek_takes():
    """I11: a seek that did not take leaves the consumer reading from elsewhere: nothing
    of that partition is buffered until `reposition` moves it."""
    coord, store, _, offsets, _ = make()
    coord.assign([("t", 0)])
    add_many(coord, [rec(0), rec(1)])
    store.offsets[("t", 0)] = 1
    offsets.failing.add(("t", 0))
    assert coord.checkpoint_now("t").outcome is CommitOutcome.FENCED
    assert not add(coord, rec(2))  # the consumer read on past the fence: refused
    coord.reposition()
    assert not add(coord, rec(3))  # still failing
    offsets.failing.clear()
    coord.reposition()
    assert offsets.seeks[-1] == {("t", 0): 1}
    assert add(coord, rec(1)) and add(coord, rec(2))
    coord.checkpoint_now("t")
    assert store.rows == [1, 2] and store.offsets[("t", 0)] == 3
