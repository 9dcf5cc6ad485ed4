"""`eos-connector deadletters list | replay`: a pipeline's dead letters shown, and
written into its table (connector/sink/replay.py)."""

from __future__ import annotations

import base64
from typing import Any

from connector.config import Settings
from connector.sink import deadletters as dl


def _shown(data: bytes | None) -> Any:
    """Bytes as people read them: UTF-8 text, else base64 (marked as such)."""
    if data is None:
        return None
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(bytes(data)).decode()}


def list_deadletters(engine: Any, pipeline: str, limit: int, include_replayed: bool) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(dl.listing(pipeline, limit, include_replayed)).all()
    return [{"source": f"{r.topic}[{r.partition}]@{r.offset}", "topic": r.topic, "partition": r.partition,
             "offset": r.offset, "checkpoint_id": r.checkpoint_id, "error_class": r.error_class, "error": r.error,
             "key": _shown(r.key), "value": _shown(r.value), "headers": r.headers,
             "created_at": r.created_at.isoformat(), "replayed_at": r.replayed_at and r.replayed_at.isoformat(),
             "forwarded_at": r.forwarded_at and r.forwarded_at.isoformat()} for r in found]


def format_listing(letters: list[dict[str, Any]]) -> str:
    if not letters:
        return "no dead letters"
    return "\n".join(f"{d['source']}\tcheckpoint {d['checkpoint_id']}\t{d['created_at']}\t{d['error_class']}: "
                     f"{d['error']}" + (f"\t(replayed {d['replayed_at']})" if d["replayed_at"] else "")
                     for d in letters)


def replay(settings: Settings, limit: int, dry_run: bool) -> tuple[int, list[str]]:
    """Replay the pipeline's dead letters into its table (see PostgresStore.replay_deadletters)."""
    from connector.sink.postgres import PostgresStore

    store = PostgresStore.from_settings(settings, replica="deadletters-replay")
    try:
        return store.replay_deadletters(store.prepare(), limit, dry_run)
    finally:
        store.close()
