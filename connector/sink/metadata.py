"""A record's metadata (SINK_METADATA_COLUMNS) as the column converters take it."""

from __future__ import annotations

import base64
from typing import Any

from connector.models import Record


def metadata_value(record: Record, field: str) -> Any:
    """A record's metadata as a JSON-like value the column converters take: the
    timestamp as epoch milliseconds; headers as an object of UTF-8 text values (a value
    that is not UTF-8 as base64; a name given more than once: a list of its values)."""
    if field == "topic":
        return record.topic
    if field == "partition":
        return record.partition
    if field == "offset":
        return record.offset
    if field == "timestamp":
        return record.timestamp_ms
    headers: dict[str, Any] = {}
    for name, raw in record.headers:
        value: Any = None
        if raw is not None:
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                value = base64.b64encode(raw).decode()
        if name in headers:
            earlier = headers[name]
            headers[name] = [*earlier, value] if isinstance(earlier, list) else [earlier, value]
        else:
            headers[name] = value
    return headers
