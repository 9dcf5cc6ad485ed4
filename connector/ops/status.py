"""What the database knows about a pipeline — committed offsets, last checkpoint, pending
snapshots, the replicas that committed recently — and, when Kafka is configured, what
Kafka knows: the group's committed offsets, the high watermarks and the lag. Read-only:
nothing joins the consumer group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from connector import bookkeeping as bk
from connector.kafka.admin import admin
from connector.sink.connection import engine_for
from connector.sink.sqlstate import convert_db_error


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
            last_seen = sa.func.max(checkpoints.c.committed_at)
            replicas = conn.execute(
                sa.select(checkpoints.c.replica, sa.func.extract("epoch", sa.func.now() - last_seen).label("age"),
                          sa.func.count().label("checkpoints"))
                .where(checkpoints.c.pipeline == pipeline,
                       checkpoints.c.committed_at > sa.func.now() - sa.text("interval '1 hour'"))
                .group_by(checkpoints.c.replica).order_by(last_seen.desc()).limit(20)
            ).all()
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
        "replicas": [{"replica": r.replica, "last_commit_age_s": float(r.age), "checkpoints_last_hour": r.checkpoints}
                     for r in replicas],
    }


def kafka_positions(config: Mapping[str, Any], topics: Sequence[str], partitions: list[dict[str, Any]],
                    timeout_s: float = 10.0) -> None:
    """Add to each partition row (and to every partition of `topics` the database has no
    row for yet) Kafka's committed offset for the group, the high watermark, and the lag
    (high watermark minus the database's next_offset). The group is only read."""
    with admin(config, "reading offsets from Kafka", timeout_s) as kafka:
        known = {(p["topic"], p["partition"]) for p in partitions}
        for topic, found in kafka.partitions(topics).items():
            for partition in found if isinstance(found, list) else []:
                if (topic, partition) not in known:
                    partitions.append({"topic": topic, "partition": partition, "next_offset": None, "replica": None})
        partitions.sort(key=lambda p: (p["topic"], p["partition"]))
        committed = kafka.committed([(p["topic"], p["partition"]) for p in partitions])
        for row in partitions:
            tp = (row["topic"], row["partition"])
            high = kafka.watermarks(tp)[1]
            row["kafka_committed"] = committed.get(tp)
            row["high_watermark"] = high
            row["lag"] = high - (row["next_offset"] or 0)
