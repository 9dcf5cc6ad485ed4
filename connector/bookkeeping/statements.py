"""The statements of the bookkeeping rows the commit transaction and the repository run
(connector/bookkeeping/tables.py): checkpoints and offsets. Pure: nothing here touches a
connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from connector import bookkeeping as bk
from connector.models import PartitionRange, TopicPartition


def checkpoint_exists(pipeline: str, checkpoint_id: int) -> sa.Select[Any]:
    t = bk.checkpoints
    return sa.select(t.c.checkpoint_id).where(t.c.pipeline == pipeline, t.c.checkpoint_id == checkpoint_id)


def ensure_offsets() -> sa.Insert:
    """Executed with `ensure_params` (one statement, compiled once: a multi-row VALUES
    list would be compiled anew for every checkpoint)."""
    return pg.insert(bk.offsets).on_conflict_do_nothing()


def ensure_params(pipeline: str, partitions: Sequence[TopicPartition]) -> list[dict[str, Any]]:
    return [{"pipeline": pipeline, "topic": t, "partition": p} for t, p in partitions]


def lock_offsets(pipeline: str, partitions: Sequence[TopicPartition]) -> sa.Select[Any]:
    """Lock the partitions' rows in a fixed order, so concurrent commits cannot deadlock."""
    t = bk.offsets
    return (
        sa.select(t.c.topic, t.c.partition, t.c.next_offset)
        .where(t.c.pipeline == pipeline, sa.tuple_(t.c.topic, t.c.partition).in_(list(partitions)))
        .order_by(t.c.topic, t.c.partition)
        .with_for_update()
    )


def read_offsets(pipeline: str, topics: Sequence[str]) -> sa.Select[Any]:
    t = bk.offsets
    return sa.select(t.c.topic, t.c.partition, t.c.next_offset).where(
        t.c.pipeline == pipeline, t.c.topic.in_(list(topics))
    )


def advance_offsets(pipeline: str) -> sa.Update:
    """Executed once per partition with `b_topic`, `b_partition`, `b_end`, `b_checkpoint`."""
    t = bk.offsets
    return (
        sa.update(t)
        .where(t.c.pipeline == pipeline, t.c.topic == sa.bindparam("b_topic"),
               t.c.partition == sa.bindparam("b_partition"))
        .values(next_offset=sa.bindparam("b_end"), checkpoint_id=sa.bindparam("b_checkpoint"),
                replica=sa.bindparam("b_replica"), updated_at=sa.func.now())
    )


def advance_params(checkpoint_id: int, replica: str, ranges: Sequence[PartitionRange]) -> list[dict[str, Any]]:
    return [{"b_topic": r.topic, "b_partition": r.partition, "b_end": r.end,
             "b_checkpoint": checkpoint_id, "b_replica": replica} for r in ranges]


def prune_checkpoints(pipeline: str, older_than: str) -> sa.Delete:
    """The pipeline's checkpoint rows older than `older_than` (an interval), but its newest."""
    t = bk.checkpoints
    newest = sa.select(sa.func.max(t.c.checkpoint_id)).where(t.c.pipeline == pipeline).scalar_subquery()
    return sa.delete(t).where(t.c.pipeline == pipeline, t.c.checkpoint_id < newest,
                              t.c.committed_at < sa.func.now() - sa.cast(older_than, pg.INTERVAL))


def record_checkpoint(pipeline: str, checkpoint_id: int, replica: str,
                      ranges: Sequence[PartitionRange], counts: dict[str, int]) -> sa.Insert:
    offsets = [{"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end,
                "records": r.records} for r in ranges]
    return sa.insert(bk.checkpoints).values(
        pipeline=pipeline, checkpoint_id=checkpoint_id, replica=replica, offsets=offsets, counts=counts
    )
