"""Positions in the bookkeeping schema, on a connection the caller holds: the pipeline's
offsets read and written, savepoints read, the live replicas, and the start-up seeding
from a savepoint (START_FROM_SAVEPOINT).

- `seed_from_savepoint`: a pipeline with no offsets yet starts where the savepoint's
  pipeline was; a pipeline that has offsets keeps them (a restart with the variable
  still set resumes, it does not rewind).

A replica is live while its heartbeat row is younger than LIVE_WITHIN_S.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from connector.bookkeeping import tables as bk
from connector.errors import ConnectorError

log = logging.getLogger(__name__)
LIVE_WITHIN_S = 10
Offsets = dict[tuple[str, int], int]


class OperationRefused(ConnectorError):
    """The operation would be unsafe or cannot complete (live replicas, unknown name…)."""


def live_rows(conn: sa.Connection, pipeline: str) -> list[sa.Row[Any]]:
    r = bk.replicas
    return list(conn.execute(sa.select(r.c.replica, r.c.started_at, r.c.acked_request).where(
        r.c.pipeline == pipeline, r.c.last_seen > sa.func.now() - sa.text(f"interval '{LIVE_WITHIN_S} seconds'"))))


def live_replicas(conn: sa.Connection, pipeline: str) -> list[str]:
    return [row.replica for row in live_rows(conn, pipeline)]


def read_offsets(conn: sa.Connection, pipeline: str) -> Offsets:
    o = bk.offsets
    rows = conn.execute(sa.select(o.c.topic, o.c.partition, o.c.next_offset).where(
        o.c.pipeline == pipeline, o.c.next_offset.is_not(None)))
    return {(row.topic, row.partition): int(row.next_offset) for row in rows}


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


def seed_from_savepoint(conn: sa.Connection, pipeline: str, name: str, topics: Container[str]) -> Offsets:
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
