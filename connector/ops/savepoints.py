"""Savepoints and offset resets: operations on a pipeline's position, from the command line.

- `create_savepoint`: ask the pipeline's live replicas to checkpoint (or to stop after a
  final checkpoint), wait until each has done so, then record the offsets table as it
  stands — one statement, so the cut is consistent: every commit moves rows and offsets
  together.
- seeding from a savepoint at start (START_FROM_SAVEPOINT) is connector/bookkeeping/positions.py's.
- `reset_offsets`: move a stopped pipeline to earliest, latest, a timestamp or a savepoint;
  refused while a replica is live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from connector import bookkeeping as bk
from connector.bookkeeping.positions import (
    Offsets,
    OperationRefused,
    live_replicas,
    live_rows,
    read_offsets,
    write_offsets,
)
from connector.kafka.admin import admin

log = logging.getLogger(__name__)


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
            waiting = [row.replica for row in live_rows(conn, pipeline) if row.acked_request < request_id]
        if not waiting:
            return
        if clock() > deadline:
            raise OperationRefused(f"replica(s) {', '.join(waiting)} did not complete the {kind} request "
                                   f"within {timeout_s:.0f}s; no savepoint taken")
        time.sleep(0.2)


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


def parse_target(to: str) -> int | None:
    """`offsets reset --to`: `earliest` or `latest` (None), or `timestamp:<ISO-8601 or
    epoch ms>` (the epoch milliseconds; an ISO time without an offset is UTC)."""
    if to in ("earliest", "latest"):
        return None
    if not to.startswith("timestamp:"):
        raise OperationRefused(f"--to {to!r}: expected earliest, latest, timestamp:<when> or savepoint:<name>")
    text = to.split(":", 1)[1].strip()
    try:
        if text.isdigit():
            return int(text)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise OperationRefused(f"--to {to!r}: expected timestamp:<ISO-8601> or timestamp:<epoch ms>") from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)


def kafka_targets(config: Mapping[str, Any], topics: Sequence[str], to: str, timeout_s: float = 10.0) -> Offsets:
    """Where `offsets reset --to` points every partition of `topics`: the first offset
    kept (`earliest`), the end (`latest`), or the first offset at or after a time (the
    end of the partition if none)."""
    when = parse_target(to)
    targets: Offsets = {}
    with admin(config, "reading offsets from Kafka", timeout_s) as kafka:
        for topic, found in kafka.partitions(topics).items():
            if isinstance(found, str):
                raise OperationRefused(f"topic {topic!r} not found in Kafka ({found})")
            for partition in found:
                low, high = kafka.watermarks((topic, partition))
                at = kafka.offset_for_time((topic, partition), when) if when is not None else None
                targets[(topic, partition)] = low if to == "earliest" else high if at is None else at
    return targets
