"""`eos-connector deadletters replay`: dead letters written into the sink table."""

from __future__ import annotations

from connector.sink import deadletters as dl
from connector.sink.commit import set_timeouts, writer
from connector.sink.connection import Database
from connector.sink.mapping import RowMapper, tolerant
from connector.sink.table import Target


def replay_deadletters(db: Database, pipeline: str, target: Target, mapper: RowMapper, *, limit: int,
                       timeout_ms: int, dry_run: bool = False) -> tuple[int, list[str]]:
    """Write up to `limit` dead letters not replayed yet into the table, in (topic,
    partition, offset) order, in one transaction: those that land are marked replayed,
    the others keep their row with the newest reason. Returns how many landed and a line
    per record still refused. `dry_run` rolls it all back."""
    with db.transaction("replaying dead letters") as conn:
        set_timeouts(conn, timeout_ms)
        found = conn.execute(dl.to_replay(pipeline, limit)).all()
        records = [dl.record_of(row) for row in found]
        rows = writer(conn, target)
        rows.write([tolerant(mapper)(record) for record in records])
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
