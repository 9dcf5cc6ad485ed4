"""Step 2 beside step 3: the snapshot is saved on the saver's thread while the store
writes, and the store commits only once it is durable. A save that fails commits
nothing and is tried again; a commit that fails after the save resumes at step 3."""

import threading

import pytest

from connector.errors import TransientError
from connector.protocol.checkpoint import CheckpointPolicy
from connector.protocol.coordinator import CheckpointCoordinator
from connector.runtime.worker import CommitWorker

from .fakes import Clock, FakeBackend, FakeOffsets, FakeStore, add_many, identity, rec

POLICY = CheckpointPolicy(interval_ms=1000, max_records=5, max_bytes=10_000)


class Events(list):
    def wait_for(self, event: str) -> None:
        for _ in range(1000):
            if event in self:
                return
            threading.Event().wait(0.01)
        raise AssertionError(f"{event!r} never happened: {self}")


class SlowBackend(FakeBackend):
    """Saves once the test opens the gate; the first `failures` saves raise."""

    def __init__(self, events: Events, failures: int = 0) -> None:
        super().__init__()
        self.events, self.gate, self.failures, self.saves = events, threading.Event(), failures, 0

    def save(self, snapshot):
        self.saves += 1
        self.events.append("save started")
        assert self.gate.wait(10), "the test never opened the gate"
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        super().save(snapshot)
        self.events.append("saved")


class WritingStore(FakeStore):
    """Notes when it has written (before waiting for durability) and when it commits; the
    first `failures` commits fail after the snapshot is durable."""

    def __init__(self, events: Events, failures: int = 0) -> None:
        super().__init__()
        self.events, self.failures = events, failures

    def commit(self, snapshot, durable):
        self.events.append("rows written")

        def then_commit():
            durable()
            if self.failures:
                self.failures -= 1
                raise TransientError("connection lost")
            self.events.append("committed")
        return super().commit(snapshot, then_commit)


def coordinator(store, backend):
    coord = CheckpointCoordinator(store, backend, FakeOffsets(), identity, POLICY, clock=Clock(), saver=CommitWorker())
    coord.assign([("t", 0)])
    add_many(coord, [rec(0), rec(1), rec(2)])
    return coord


def test_rows_are_written_while_the_snapshot_saves_and_committed_once_it_is_durable():
    events = Events()
    store, backend = WritingStore(events), SlowBackend(events)
    coord = coordinator(store, backend)
    done = threading.Thread(target=coord.checkpoint_now, args=("interval",))
    done.start()
    events.wait_for("rows written")
    assert events == ["save started", "rows written"] and store.rows == []  # step 3 waits for step 2
    backend.gate.set()
    done.join(10)
    assert events == ["save started", "rows written", "saved", "committed"]
    assert store.rows == [0, 1, 2] and backend.discarded == [1] and backend.saves == 1


def test_a_failed_save_commits_nothing_and_is_tried_again():
    events = Events()
    store, backend = WritingStore(events), SlowBackend(events, failures=1)
    backend.gate.set()
    coord = coordinator(store, backend)
    with pytest.raises(OSError, match="No space left"):
        coord.checkpoint_now("interval")
    assert store.rows == [] and store.committed == {} and backend.saved == {}
    coord.finish_in_flight()  # the retry: step 2 again, then step 3
    assert store.rows == [0, 1, 2] and backend.saves == 2 and backend.discarded == [1]


def test_a_commit_that_fails_after_the_save_resumes_at_step_3():
    events = Events()
    store, backend = WritingStore(events, failures=1), SlowBackend(events)
    backend.gate.set()
    coord = coordinator(store, backend)
    with pytest.raises(TransientError):
        coord.checkpoint_now("interval")
    assert store.rows == [] and list(backend.saved) == [1]  # durable, not committed
    coord.finish_in_flight()
    assert store.rows == [0, 1, 2] and backend.saves == 1 and backend.discarded == [1]
