"""Savepoints and offset resets: operations on a pipeline's position, from the command line.

- `create_savepoint`: ask the pipeline's live replicas to checkpoint (or to stop after a
  final checkpoint), wait until each has done so, then record the offsets table as it
  stands — one statement, so the cut is consistent: every commit moves rows and offsets
  together.
- `seed_from_savepoint` (START_FROM_SAVEPOINT): a pipeline with no offsets yet starts
  where the savepoint's pipeline was; a pipeline that has offsets keeps them (a restart
  with the variable still set resumes, it does not rewind).
- `reset_offsets`: move a stopped pipeline to earliest, latest, a timestamp or a savepoint;
  refused while a replica is live.

A replica is live while its heartbeat row is younger than LIVE_WITHIN_S.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from connector import bookkeeping as bk
from connector.errors import ConnectorError

log = logging.getLogger(__name__)
LIVE_WITHIN_S = 10
Offsets = dict[tuple[str, int], int]


class OperationRefused(ConnectorError):
    """The operation would be unsafe or cannot complete (live replicas, unknown name…)."""


def _live(conn: sa.Connection, pipeline: str) -> list[sa.Row[Any]]:
    r = bk.replicas
    return list(conn.execute(sa.select(r.c.replica, r.c.started_at, r.c.acked_request).where(
        r.c.pipeline == pipeline, r.c.last_seen > sa.func.now() - sa.text(f"interval '{LIVE_WITHIN_S} seconds'"))))


def live_replicas(conn: sa.Connection, pipeline: str) -> list[str]:
    return [row.replica for row in _live(conn, pipeline)]


def read_offsets(conn: sa.Connection, pipeline: str) -> Offsets:
    o = bk.offsets
    rows = conn.execute(sa.select(o.c.topic, o.c.partition, o.c.next_offset).where(
        o.c.pipeline == pipeline, o.c.next_offset.is_not(None)))
    return {(row.topic, row.partition): int(row.next_offset) for row in rows}


def create_savepoint(engine: sa.Engine, pipeline: str, name: str, stop: bool = False, timeout_s: float = 120,
                     clock: Callable[[], float] = time.monotonic) -> Offsets:
    kind = "stop" if stop else "checkpoint"
    with engine.begin() as conn:
        if conn.scalar(sa.select(bk.savepoints.c.name).where(bk.savepoints.c.name == name)) is not None:
            raise OperationRefused(f"savepoint {name!r} exists already; choose another name")
        request = conn.execute(sa.insert(bk.requests).values(pipeline=pipeline, kind=kind)
                               .returning(bk.requests.c.id, bk.requests.c.created_at)).one()
    try:
        _wait_for_replicas(engine, pipeline, request.id, kind, timeout_s, clock)
        with engine.begin() as conn:
            offsets = read_offsets(conn, pipeline)
            rows = [[topic, partition, offset] for (topic, partition), offset in sorted(offsets.items())]
            conn.execute(sa.insert(bk.savepoints).values(name=name, pipeline=pipeline, offsets=rows))
    finally:  # done (or given up): a replica starting later must not act on it
        with engine.begin() as conn:
            conn.execute(sa.delete(bk.requests).where(bk.requests.c.id == request.id))
    return offsets


def _wait_for_replicas(engine: sa.Engine, pipeline: str, request_id: int, kind: str, timeout_s: float,
                       clock: Callable[[], float]) -> None:
    """Until every live replica completed the request — one that started meanwhile too
    (its first heartbeat takes requests in flight)."""
    deadline = clock() + timeout_s
    while True:
        with engine.connect() as conn:
            waiting = [row.replica for row in _live(conn, pipeline) if row.acked_request < request_id]
        if not waiting:
            return
        if clock() > deadline:
            raise OperationRefused(f"replica(s) {', '.join(waiting)} did not complete the {kind} request "
                                   f"within {timeout_s:.0f}s; no savepoint taken")
        time.sleep(0.2)


def savepoint_offsets(conn: sa.Connection, name: str) -> tuple[str, Offsets]:
    s = bk.savepoints
    row = conn.execute(sa.select(s.c.pipeline, s.c.offsets).where(s.c.name == name)).first()
    if row is None:
        known = [r.name for r in conn.execute(sa.select(s.c.name).order_by(s.c.name))]
        raise OperationRefused(f"no savepoint named {name!r} (known: {', '.join(known) or 'none'})")
    return row.pipeline, {(t, int(p)): int(o) for t, p, o in row.offsets}


def list_savepoints(conn: sa.Connection) -> list[dict[str, Any]]:
    s = bk.savepoints
    rows = conn.execute(sa.select(s.c.name, s.c.pipeline, s.c.offsets, s.c.created_at).order_by(s.c.created_at))
    return [{"name": r.name, "pipeline": r.pipeline, "partitions": len(r.offsets),
             "records": sum(o for _, _, o in r.offsets), "created_at": r.created_at.isoformat()} for r in rows]


def write_offsets(conn: sa.Connection, pipeline: str, offsets: Mapping[tuple[str, int], int], note: str,
                  overwrite: bool = True) -> None:
    """Set the pipeline's next_offsets and drop its pending snapshots, which were cut
    against the old offsets. `overwrite=False` only creates missing rows: a concurrent
    replica's progress is never rewound."""
    o = bk.offsets
    for (topic, partition), offset in sorted(offsets.items()):
        row = {"pipeline": pipeline, "topic": topic, "partition": partition, "next_offset": offset, "replica": note}
        insert = pg_insert(o).values(**row)
        conn.execute(insert.on_conflict_do_update(
            index_elements=[o.c.pipeline, o.c.topic, o.c.partition],
            set_={"next_offset": offset, "replica": note, "checkpoint_id": None, "updated_at": sa.func.now()})
            if overwrite else insert.on_conflict_do_nothing())
    if overwrite:
        conn.execute(sa.delete(bk.snapshots).where(bk.snapshots.c.pipeline == pipeline))


def seed_from_savepoint(conn: sa.Connection, pipeline: str, name: str, topics: Sequence[str]) -> Offsets:
    """START_FROM_SAVEPOINT: the savepoint's offsets for `topics`, if the pipeline has no
    offsets yet; {} (nothing done) if it has."""
    source, offsets = savepoint_offsets(conn, name)
    if read_offsets(conn, pipeline):
        log.info("pipeline %r has offsets already: START_FROM_SAVEPOINT=%s is not applied again", pipeline, name)
        return {}
    chosen = {tp: o for tp, o in offsets.items() if tp[0] in topics}
    write_offsets(conn, pipeline, chosen, f"savepoint {name}", overwrite=False)
    log.info("pipeline %r starts from savepoint %r of pipeline %r: %d partition(s)", pipeline, name, source,
             len(chosen))
    return chosen


def reset_offsets(engine: sa.Engine, pipeline: str, target: Offsets, dry_run: bool) -> tuple[Offsets, Offsets]:
    """(before, after). Refused while a replica of the pipeline is live."""
    with engine.begin() as conn:
        live = live_replicas(conn, pipeline)
        before = read_offsets(conn, pipeline)
        if live and not dry_run:
            raise OperationRefused(f"pipeline {pipeline!r} has live replica(s) {', '.join(live)}: stop them first "
                                   f"(or use `savepoint create --stop`); nothing was changed")
        if not dry_run:
            write_offsets(conn, pipeline, target, "offsets reset")
    return before, target


def kafka_targets(config: dict[str, Any], topics: Sequence[str], to: str, timeout_s: float = 10.0) -> Offsets:
    """Where `offsets reset --to` points every partition of `topics`: `earliest`,
    `latest`, or `timestamp:<ISO-8601 or epoch ms>` (the first offset at or after it;
    the end of the partition if none)."""
    from datetime import datetime, timezone

    from confluent_kafka import Consumer, KafkaException, TopicPartition

    when: int | None = None
    if to.startswith("timestamp:"):
        text = to.split(":", 1)[1].strip()
        try:
            if text.isdigit():
                when = int(text)
            else:
                parsed = datetime.fromisoformat(text)
                when = int((parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp() * 1000)
        except ValueError:
            raise OperationRefused(f"--to {to!r}: expected timestamp:<ISO-8601> or timestamp:<epoch ms>") from None
    elif to not in ("earliest", "latest"):
        raise OperationRefused(f"--to {to!r}: expected earliest, latest, timestamp:<when> or savepoint:<name>")
    consumer = Consumer({**config, "enable.auto.commit": "false"})
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        targets: Offsets = {}
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                raise OperationRefused(f"topic {topic!r} not found in Kafka")
            for partition in sorted(meta.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
                offset = low if to == "earliest" else high
                if when is not None:
                    found = consumer.offsets_for_times([TopicPartition(topic, partition, when)], timeout=timeout_s)[0]
                    offset = found.offset if found.offset >= 0 else high
                targets[(topic, partition)] = offset
        return targets
    except KafkaException as exc:
        raise OperationRefused(f"reading offsets from Kafka: {exc.args[0]}") from exc
    finally:
        consumer.close()
