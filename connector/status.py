"""What the database knows about a pipeline: committed offsets, last checkpoint, pending
snapshots. Read-only."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from connector import bookkeeping as bk
from connector.sink.postgres import convert_db_error, engine_for


def pipeline_status(url: str, schema: str, pipeline: str) -> dict[str, Any]:
    offsets, checkpoints, snapshots = bk.offsets, bk.checkpoints, bk.snapshots
    try:
        with engine_for(url).connect() as raw:
            conn = raw.execution_options(schema_translate_map=bk.translate(schema))
            partitions = conn.execute(
                sa.select(offsets.c.topic, offsets.c.partition, offsets.c.next_offset, offsets.c.replica)
                .where(offsets.c.pipeline == pipeline).order_by(offsets.c.topic, offsets.c.partition)
            ).all()
            last = conn.execute(
                sa.select(checkpoints.c.checkpoint_id, checkpoints.c.replica,
                          sa.func.extract("epoch", sa.func.now() - checkpoints.c.committed_at).label("age"))
                .where(checkpoints.c.pipeline == pipeline)
                .order_by(checkpoints.c.checkpoint_id.desc()).limit(1)
            ).first()
            pending = conn.scalar(sa.select(sa.func.count()).select_from(snapshots)
                                  .where(snapshots.c.pipeline == pipeline))
    except sa.exc.DBAPIError as exc:
        raise convert_db_error(exc, f"reading the status of pipeline {pipeline!r}") from exc
    return {
        "pipeline": pipeline,
        "schema": schema,
        "partitions": [{"topic": r.topic, "partition": r.partition, "next_offset": r.next_offset,
                        "replica": r.replica} for r in partitions],
        "last_checkpoint": {"checkpoint_id": last.checkpoint_id, "replica": last.replica, "age_s": float(last.age)}
        if last else None,
        "pending_snapshots": int(pending or 0),
    }
