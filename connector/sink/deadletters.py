"""Dead letters as rows and statements. Pure: nothing here touches a connection.

A dead letter keeps the record as read from Kafka (key, value and headers as bytes, its
timestamp) and why it wrote nothing, so it can be inspected, forwarded to a Kafka topic
and replayed into the table once the table (or the data) is fixed. Headers are stored
as `[[name, base64 value or null], …]` in record order: exact bytes, repeated names kept.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from connector import bookkeeping as bk
from connector.models import Record
from connector.sink.sqlstate import Rejection

KEY_COLUMNS = ("topic", "partition", "offset", "checkpoint_id")


def encode_headers(headers: Sequence[tuple[str, bytes | None]]) -> list[list[str | None]]:
    return [[name, None if value is None else base64.b64encode(value).decode()] for name, value in headers]


def decode_headers(stored: Sequence[Sequence[str | None]]) -> tuple[tuple[str, bytes | None], ...]:
    return tuple((str(name), None if value is None else base64.b64decode(value)) for name, value in stored)


def rows(pipeline: str, checkpoint_id: int, replica: str, records: Sequence[Record],
         rejected: Mapping[int, Rejection]) -> list[dict[str, Any]]:
    """The dead-letter rows of checkpoint `checkpoint_id`: one per rejected record."""
    out = []
    for index in sorted(rejected):
        record, why = records[index], rejected[index]
        stamp = None if record.timestamp_ms is None else datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        out.append({"pipeline": pipeline, "topic": record.topic, "partition": record.partition,
                    "offset": record.offset, "checkpoint_id": checkpoint_id, "replica": replica,
                    "record_timestamp": stamp, "key": record.key, "value": record.value,
                    "headers": encode_headers(record.headers), "error_class": why.error_class, "error": why.error})
    return out


def record_of(row: Any) -> Record:
    """The Kafka record a stored dead letter holds."""
    stamp = row.record_timestamp
    return Record(row.topic, row.partition, row.offset, None if row.key is None else bytes(row.key),
                  None if row.value is None else bytes(row.value),
                  None if stamp is None else round(stamp.timestamp() * 1000), decode_headers(row.headers))


def insert() -> sa.Insert:
    """Executed with the list from `rows`."""
    return sa.insert(bk.deadletters)


def supersede(pipeline: str, records: Sequence[tuple[str, int, int]]) -> sa.Delete:
    """Earlier dead letters of these (topic, partition, offset) not replayed yet: the record
    was read again (after an offsets reset) and refused again, so only the newest stays."""
    t = bk.deadletters
    return sa.delete(t).where(t.c.pipeline == pipeline, t.c.replayed_at.is_(None),
                              sa.tuple_(t.c.topic, t.c.partition, t.c.offset).in_([tuple(r) for r in records]))


def _where_key(keys: Sequence[Sequence[Any]]) -> sa.ColumnElement[bool]:
    t = bk.deadletters
    return sa.tuple_(*(t.c[c] for c in KEY_COLUMNS)).in_([tuple(k) for k in keys])


def listing(pipeline: str, limit: int, include_replayed: bool = False) -> sa.Select[Any]:
    t = bk.deadletters
    query = sa.select(t).where(t.c.pipeline == pipeline)
    if not include_replayed:
        query = query.where(t.c.replayed_at.is_(None))
    return query.order_by(t.c.topic, t.c.partition, t.c.offset, t.c.checkpoint_id).limit(limit)


def to_replay(pipeline: str, limit: int) -> sa.Select[Any]:
    """Dead letters not replayed yet, oldest first, locked: a concurrent replay skips
    them, so no dead letter is replayed twice."""
    return listing(pipeline, limit).with_for_update(skip_locked=True)


def mark_replayed(pipeline: str, keys: Sequence[Sequence[Any]]) -> sa.Update:
    t = bk.deadletters
    return sa.update(t).where(t.c.pipeline == pipeline, _where_key(keys)).values(replayed_at=sa.func.now())


def record_error(pipeline: str) -> sa.Update:
    """A replay that failed again: the newest reason. Executed with `b_*` parameters."""
    t = bk.deadletters
    return (sa.update(t).where(t.c.pipeline == pipeline, *(t.c[c] == sa.bindparam(f"b_{c}") for c in KEY_COLUMNS))
            .values(error_class=sa.bindparam("b_error_class"), error=sa.bindparam("b_error")))


def unforwarded(pipeline: str, limit: int) -> sa.Select[Any]:
    """The oldest dead letters not forwarded yet, locked for this transaction; rows another
    replica's forwarder holds are skipped, so no two replicas forward the same one."""
    t = bk.deadletters
    return (sa.select(t).where(t.c.pipeline == pipeline, t.c.forwarded_at.is_(None))
            .order_by(t.c.checkpoint_id, t.c.topic, t.c.partition, t.c.offset).limit(limit)
            .with_for_update(skip_locked=True))


def mark_forwarded(pipeline: str, keys: Sequence[Sequence[Any]]) -> sa.Update:
    t = bk.deadletters
    return sa.update(t).where(t.c.pipeline == pipeline, _where_key(keys)).values(forwarded_at=sa.func.now())


def key_of(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, c) for c in KEY_COLUMNS)

