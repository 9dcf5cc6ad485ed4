"""Operator state over columnar runs: stale records skipped, the buffer cut exactly at
its bounds with the rest handed back, a bad record leaving everything before it
buffered, and a snapshot's records read back exactly as they were polled."""

import pytest

from connector.errors import MappingError
from connector.models import Record
from connector.protocol.runs import runs_of
from connector.protocol.state import MappingFailed, OperatorState

from .fakes import rec


def map_offsets(run, start, stop):
    return [run.record(i).offset for i in range(start, stop)]


def refuse_at(bad_offset):
    def map_run(run, start, stop):
        ops = []
        for i in range(start, stop):
            record = run.record(i)
            if record.offset == bad_offset:
                raise MappingFailed(MappingError(record.topic, record.partition, record.offset, "bad"), ops)
            ops.append(record.offset)
        return ops
    return map_run


def state_of(*partitions, position=None):
    state = OperatorState()
    for p in partitions:
        state.assign(("t", p), position)
    return state


def test_runs_split_where_the_partition_changes_and_keep_poll_order():
    records = [rec(0, 0), rec(1, 0), rec(0, 1), rec(2, 0), rec(1, 1)]
    runs = runs_of(records)
    assert [(r.partition, [r.record(i) for i in range(len(r))]) for r in runs] == [
        (0, records[:2]), (1, records[2:3]), (0, records[3:4]), (1, records[4:])]


def test_records_before_the_position_are_skipped_not_buffered():
    """A redelivery from before the partition's position is never buffered twice."""
    state = state_of(0, position=3)
    left = state.add_runs(runs_of([rec(o) for o in range(6)]), map_offsets, 100, 10**9)
    assert left == [] and state.records == 3
    snapshot = state.snapshot(1)
    assert list(snapshot.ops) == [3, 4, 5] and snapshot.ranges[0].start == 3 and snapshot.ranges[0].end == 6
    assert state.add_runs(runs_of([rec(4), rec(5), rec(6)]), map_offsets, 100, 10**9) == []
    assert list(state.snapshot(2).ops) == [6]


def test_a_full_buffer_hands_back_the_rest_exactly():
    """I5: the buffer stops at max_records; the cut run's tail and the runs after it
    come back, to be buffered after the checkpoint."""
    state = state_of(0, 1)
    runs = runs_of([rec(o, 0) for o in range(4)] + [rec(o, 1) for o in range(3)])
    left = state.add_runs(runs, map_offsets, 3, 10**9)
    assert state.records == 3 and [(r.partition, map_offsets(r, 0, len(r))) for r in left] == [(0, [3]), (1, [0, 1, 2])]
    assert state.snapshot(1).ranges[0].end == 3
    left = state.add_runs(left, map_offsets, 3, 10**9)
    assert [(r.partition, map_offsets(r, 0, len(r))) for r in left] == [(1, [2])]
    assert [(r.tp, r.start, r.end) for r in state.snapshot(2).ranges] == [(("t", 0), 3, 4), (("t", 1), None, 2)]


def test_the_byte_bound_cuts_after_the_record_that_reaches_it():
    state = state_of(0)
    runs = runs_of([Record("t", 0, o, None, b"x" * 10) for o in range(5)])
    left = state.add_runs(runs, map_offsets, 100, 25)
    assert state.records == 3 and state.bytes == 30
    assert [map_offsets(r, 0, len(r)) for r in left] == [[3, 4]]


def test_a_bad_record_leaves_the_records_before_it_buffered():
    """I9: the error surfaces with everything read before the bad record kept."""
    state = state_of(0)
    with pytest.raises(MappingError, match="bad"):
        state.add_runs(runs_of([rec(o) for o in range(5)]), refuse_at(2), 100, 10**9)
    snapshot = state.snapshot(1)
    assert list(snapshot.ops) == [0, 1] and snapshot.ranges[0].end == 2


def test_records_of_partitions_not_owned_are_dropped():
    state = state_of(0)
    assert state.add_runs(runs_of([rec(0, 1), rec(0, 0)]), map_offsets, 100, 10**9) == []
    assert state.records == 1 and state.snapshot(1).partitions == (("t", 0),)


def test_snapshot_records_read_back_in_order_with_their_ops():
    state = state_of(0, 1)
    records = [rec(0, 1), rec(0, 0), rec(1, 0), rec(1, 1), rec(2, 0)]
    state.add_runs(runs_of(records), map_offsets, 100, 10**9)
    snapshot = state.snapshot(1)
    expected = [rec(0, 0), rec(1, 0), rec(2, 0), rec(0, 1), rec(1, 1)]  # by partition, then offset
    assert list(snapshot.records) == expected and snapshot.records == tuple(expected)
    assert [snapshot.records[i] for i in range(-5, 5)] == expected * 2
    assert list(snapshot.ops) == [r.offset for r in expected] and snapshot.size == 5
    with pytest.raises(IndexError):
        snapshot.records[5]


def test_offsets_skipped_past_the_read_position_are_counted_as_gaps():
    """Transaction markers and compaction leave offsets no record holds: counted, not refused."""
    state = OperatorState()
    state.assign(("t", 0), 10)
    state.add_runs(runs_of([rec(12), rec(13), rec(15)]), lambda run, a, b: [None] * (b - a), 100, 10**6)
    assert state.records == 3 and state.take_gaps() == 3 and state.gaps == 0


def test_caught_up_means_every_owned_partition_read_to_its_end_since_its_last_record():
    state = state_of(0, 1, position=10)
    assert not state.caught_up()  # no end known yet
    state.reached_end(("t", 0), 10)
    state.reached_end(("t", 1), 12)  # past markers to 12: read to its end
    assert state.caught_up()
    state.add_runs(runs_of([rec(12, 1)]), map_offsets, 100, 10**6)
    assert not state.caught_up()  # read past the end it knew
    state.reached_end(("t", 1), 13)
    state.snapshot(1)
    assert state.caught_up()  # a snapshot reads nothing on
    state.reached_end(("t", 2), 5)  # not owned: no end to know
    state.assign(("t", 2), 5)
    assert not state.caught_up()
    state.reached_end(("t", 2), 5)
    state.unpositioned(("t", 0))  # its seek did not take: where it reads is unknown
    assert not state.caught_up()
    state.positioned(("t", 0))
    state.reached_end(("t", 0), 10)
    assert state.caught_up()
    state.release(("t", 0))
    state.assign(("t", 0), 10)  # assigned again: its end is found anew
    assert not state.caught_up()
    for p in (0, 1, 2):
        state.release(("t", p))
    assert not state.caught_up()  # owning nothing is not being caught up
