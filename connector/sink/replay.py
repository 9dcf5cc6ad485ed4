"""`eos-connector deadletters replay`: dead letters written into the tables their topics
are routed to."""

from __future__ import annotations

from collections.abc import Callable

from connector.models import Record
from connector.sink import deadletters as dl
from connector.sink.commit import set_timeouts
from connector.sink.connection import Database
from connector.sink.mapping import Op, tolerant
from connector.sink.routed import RoutedWriter, spans_of
from connector.sink.table import Target


def replay_deadletters(db: Database, pipeline: str, target_for: Callable[[str], Target],
                       mapper: Callable[[Record], Op], *, limit: int, timeout_ms: int, timezone: str = "UTC",
                       dry_run: bool = False) -> tuple[int, list[str]]:
    """Write up to `limit` dead letters not replayed yet into their tables, in (topic,
    partition, offset) order, in one transaction: those that land are marked replayed,
    the others keep their row with the newest reason. Returns how many landed and a line
    per record still refused. `dry_run` rolls it all back."""
    with db.transaction("replaying dead letters") as conn:
        set_timeouts(conn, timeout_ms, timezone)
        found = conn.execute(dl.to_replay(pipeline, limit)).all()
        records = [dl.record_of(row) for row in found]
        rows = RoutedWriter(conn, target_for)
        rows.write(spans_of([record.topic for record in records]), [tolerant(mapper)(record) for record in records])
        landed = [dl.key_of(row) for i, row in enumerate(found) if i not in rows.rejected]
        if landed:
            conn.execute(dl.mark_replayed(pipeline, landed))
        if rows.rejected:
            conn.execute(dl.record_error(pipeline), [
                {**{f"b_{c}": v for c, v in zip(dl.KEY_COLUMNS, dl.key_of(found[i]), strict=True)},
                 "b_error_class": why.error_class, "b_error": why.error} for i, why in rows.rejected.items()])
        if dry_run:
            conn.get_transaction().rollback()  # type: ignore[union-attr]
    return len(landed), [f"{records[i].where()}: {why.error_class}: {why.error}"
                         for i, why in sorted(rows.rejected.items())]
