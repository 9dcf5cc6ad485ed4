"""The commit transaction's bookkeeping against real PostgreSQL, through the store's own
commit: which statements a checkpoint costs (a partition's first commit creates its
offsets row; later ones only lock it), that step 4 moves every partition's next_offset
whatever their number, and that a row deleted while the pipeline runs is created and
locked again rather than left out of the compare-and-set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from connector.models import CommitOutcome, PartitionRange, Record, Snapshot
from connector.ops.migrate import upgrade
from connector.routing import TableConfig
from connector.sink.connection import engine_for
from connector.sink.postgres import PostgresStore

pytestmark = pytest.mark.integration
TOPIC = "orders.é \"eu\"\t1"  # topic names travel as parameters


class Pipeline:
    """One pipeline's store on a fresh table; `commit` writes one checkpoint."""

    def __init__(self, services: Any) -> None:
        self.services, self.table = services, f"commits_{uuid.uuid4().hex[:8]}"
        services.sql(f"CREATE TABLE {self.table} (event_id bigint NOT NULL, note text)")
        self.store = PostgresStore(services.database_url, f"commits-{uuid.uuid4().hex[:8]}", "r1", "eos",
                                   routes=TableConfig((None, self.table)))
        self.mapper = self.store.prepare()
        self.sent: list[str] = []  # the first word of each statement of the last commit
        self._sending: list[str] = []
        sa.event.listen(self.store.db.connection().engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *rest: self._sending.append(statement.split(None, 1)[0]))

    def commit(self, ranges: list[tuple[int, int | None, int]]) -> CommitOutcome:
        """One checkpoint of (partition, start, end) ranges, a record at each offset."""
        records = [Record(TOPIC, p, o, None, orjson.dumps({"event_id": p * 1000 + o, "note": "Zoë \\ \"q\"\t"}))
                   for p, start, end in ranges for o in range(start or 0, end)]
        snapshot = Snapshot(self.store.next_checkpoint_id(),
                            tuple(PartitionRange(TOPIC, p, start, end, end - (start or 0)) for p, start, end in ranges),
                            records, tuple(self.mapper(r) for r in records))
        self._sending.clear()
        outcome = self.store.commit(snapshot, lambda: None).outcome
        self.sent = list(self._sending)  # sent through SQLAlchemy: the rows' COPY is on the driver's cursor
        return outcome

    def offsets(self) -> dict[int, int | None]:
        return dict(self.services.sql("SELECT partition, next_offset FROM eos.offsets WHERE pipeline = %s "
                                      "AND topic = %s", [self.store.pipeline, TOPIC]))

@pytest.fixture
def pipeline(services: Any) -> Iterator[Pipeline]:
    engine = engine_for(services.database_url)
    upgrade(engine, "eos")
    engine.dispose()
    made = Pipeline(services)
    try:
        yield made
    finally:
        made.store.close()


def test_a_partitions_first_commit_creates_its_row_and_later_ones_only_lock_it(services, pipeline):
    assert pipeline.commit([(0, None, 3), (1, None, 2)]) is CommitOutcome.COMMITTED
    # Step 1 with the settings, create the rows, lock them, the rows' COPY in a savepoint, step 4.
    assert pipeline.sent == ["SELECT", "INSERT", "SELECT", "SAVEPOINT", "RELEASE", "WITH"]
    assert pipeline.commit([(0, 3, 5), (1, 2, 4)]) is CommitOutcome.COMMITTED
    assert pipeline.sent == ["SELECT", "SELECT", "SAVEPOINT", "RELEASE", "WITH"]
    assert pipeline.commit([(1, 4, 5), (2, None, 1)]) is CommitOutcome.COMMITTED  # partition 2 is new
    assert pipeline.sent == ["SELECT", "INSERT", "SELECT", "SAVEPOINT", "RELEASE", "WITH"]
    assert pipeline.offsets() == {0: 5, 1: 5, 2: 1}
    assert services.sql(f"SELECT count(*), count(DISTINCT event_id) FROM {pipeline.table}") == [(11, 11)]


def test_step_4_moves_every_partition_and_records_the_checkpoint(services, pipeline):
    ranges: list[tuple[int, int | None, int]] = [(p, None, 2) for p in range(40)]
    assert pipeline.commit(ranges) is CommitOutcome.COMMITTED
    big = 2**40  # offsets past 32 bits
    services.sql("UPDATE eos.offsets SET next_offset = %s WHERE pipeline = %s AND partition = 7",
                 [big, pipeline.store.pipeline])
    moved = [(p, 2 if p != 7 else big, 3 if p != 7 else big + 1) for p in range(40)]
    assert pipeline.commit(moved) is CommitOutcome.COMMITTED
    assert pipeline.offsets() == {p: 3 if p != 7 else big + 1 for p in range(40)}
    assert services.sql("SELECT replica, jsonb_array_length(offsets), counts->>'records' FROM eos.checkpoints "
                        "WHERE pipeline = %s ORDER BY checkpoint_id", [pipeline.store.pipeline]) == [
        ("r1", 40, "80"), ("r1", 40, "40")]


def test_an_offsets_row_deleted_while_running_is_created_and_locked_again(services, pipeline):
    assert pipeline.commit([(0, None, 2), (1, None, 2)]) is CommitOutcome.COMMITTED
    services.sql("DELETE FROM eos.offsets WHERE pipeline = %s AND partition = 1", [pipeline.store.pipeline])
    # Partition 1 starts over (as after its row went): its range starts at no offset.
    assert pipeline.commit([(0, 2, 3), (1, None, 1)]) is CommitOutcome.COMMITTED
    assert pipeline.offsets() == {0: 3, 1: 1}
    # A range that does not start where the row stands is fenced, the created row included.
    assert pipeline.commit([(0, 3, 4), (1, 5, 6)]) is CommitOutcome.FENCED
    assert pipeline.offsets() == {0: 3, 1: 1}
