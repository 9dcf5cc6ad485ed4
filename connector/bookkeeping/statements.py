"""The statements of the bookkeeping rows the commit transaction and the repository run
(connector/bookkeeping/tables.py): checkpoints and offsets. Pure: nothing here touches a
connection. The commit transaction's take their values as parameters, so each is built
once per pipeline: building and keying one anew for every checkpoint took longer than
the database took to run it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from connector import bookkeeping as bk
from connector.models import PartitionRange, TopicPartition


def checkpoint_committed(pipeline: str) -> sa.Exists:
    """Whether (pipeline, `checkpoint_id`) is in the checkpoints table: a column to select."""
    t = bk.checkpoints
    return sa.exists().where(t.c.pipeline == pipeline, t.c.checkpoint_id == sa.bindparam("checkpoint_id"))


class CommitStatements(NamedTuple):
    """The commit transaction's statements of one pipeline, built once."""

    begin: sa.Select[Any]  # the transaction's settings, then whether `checkpoint_id` is committed (step 1)
    committed: sa.Select[Any]  # whether `checkpoint_id` is committed
    lock: sa.Select[Any]  # step 2's lock of `partitions`
    advance: sa.Insert  # step 4, with `advance_params`


def commit_statements(pipeline: str, settings: Sequence[sa.ColumnElement[Any]]) -> CommitStatements:
    """`settings`: columns to select first, as set_config() calls."""
    return CommitStatements(sa.select(*settings, checkpoint_committed(pipeline)),
                            sa.select(checkpoint_committed(pipeline)), lock_offsets(pipeline),
                            advance_and_record(pipeline))


def ensure_offsets() -> sa.Insert:
    """Executed with `ensure_params` (one statement, compiled once: a multi-row VALUES
    list would be compiled anew for every checkpoint), the rows in the order they are
    locked in, so two first commits of the same partitions cannot deadlock."""
    return pg.insert(bk.offsets).on_conflict_do_nothing()


def ensure_params(pipeline: str, partitions: Sequence[TopicPartition]) -> list[dict[str, Any]]:
    return [{"pipeline": pipeline, "topic": t, "partition": p} for t, p in sorted(partitions)]


def lock_offsets(pipeline: str) -> sa.Select[Any]:
    """Lock the rows of `partitions` ((topic, partition) pairs) in a fixed order, so
    concurrent commits cannot deadlock."""
    t = bk.offsets
    return (
        sa.select(t.c.topic, t.c.partition, t.c.next_offset)
        .where(t.c.pipeline == pipeline,
               sa.tuple_(t.c.topic, t.c.partition).in_(sa.bindparam("partitions", expanding=True)))
        .order_by(t.c.topic, t.c.partition)
        .with_for_update()
    )


def read_offsets(pipeline: str, topics: Sequence[str]) -> sa.Select[Any]:
    t = bk.offsets
    return sa.select(t.c.topic, t.c.partition, t.c.next_offset).where(
        t.c.pipeline == pipeline, t.c.topic.in_(list(topics))
    )


def prune_checkpoints(pipeline: str, older_than: str) -> sa.Delete:
    """The pipeline's checkpoint rows older than `older_than` (an interval), but its newest."""
    t = bk.checkpoints
    newest = sa.select(sa.func.max(t.c.checkpoint_id)).where(t.c.pipeline == pipeline).scalar_subquery()
    return sa.delete(t).where(t.c.pipeline == pipeline, t.c.checkpoint_id < newest,
                              t.c.committed_at < sa.func.now() - sa.cast(older_than, pg.INTERVAL))


def advance_and_record(pipeline: str) -> sa.Insert:
    """Step 4 in one statement, executed with `advance_params`: each range's partition row
    gets the range's end as its next_offset (the rows are locked: step 2), and the
    checkpoint row is inserted. The ranges travel as three arrays."""
    t = bk.offsets
    ends = sa.func.unnest(sa.cast(sa.bindparam("topics"), pg.ARRAY(sa.Text)),
                          sa.cast(sa.bindparam("partitions"), pg.ARRAY(sa.Integer)),
                          sa.cast(sa.bindparam("ends"), pg.ARRAY(sa.BigInteger)),
                          ).table_valued("topic", "partition", "next_offset").render_derived(name="ends")
    checkpoint_id, replica = sa.bindparam("checkpoint_id", type_=sa.BigInteger), sa.bindparam("replica", type_=sa.Text)
    advanced = (
        sa.update(t)
        .where(t.c.pipeline == pipeline, t.c.topic == ends.c.topic, t.c.partition == ends.c.partition)
        .values(next_offset=ends.c.next_offset, checkpoint_id=checkpoint_id, replica=replica, updated_at=sa.func.now())
        .cte("advanced")
    )
    return sa.insert(bk.checkpoints).values(
        pipeline=pipeline, checkpoint_id=checkpoint_id, replica=replica, offsets=sa.bindparam("offsets"),
        counts=sa.bindparam("counts"),
    ).add_cte(advanced)


def advance_params(checkpoint_id: int, replica: str, ranges: Sequence[PartitionRange],
                   counts: dict[str, Any]) -> dict[str, Any]:
    offsets = [{"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end,
                "records": r.records} for r in ranges]
    return {"topics": [r.topic for r in ranges], "partitions": [r.partition for r in ranges],
            "ends": [r.end for r in ranges], "checkpoint_id": checkpoint_id, "replica": replica,
            "offsets": offsets, "counts": counts}
