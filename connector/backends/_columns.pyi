from collections.abc import Callable, Sequence
from typing import Any

def columns(items: Sequence[Any], values: Sequence[bytes | None], offset: Callable[[Any], int],
            timestamp: Callable[[Any], Any], key: Callable[[Any], bytes | None]
            ) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """A snapshot segment's columns, little-endian: offsets, timestamps (ms, -1: none),
    key and value lengths (-1: None), the keys and the values back to back
    (connector/backends/_columns.c)."""

def message_columns(type: type, items: Sequence[Any], values: Sequence[bytes | None]
                    ) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """The same columns for confluent-kafka messages (instances of `type`, its Message),
    read from the fields of their C struct."""

def message_fields(type: type, message: Any) -> tuple[int, int, int]:
    """(offset, timestamp in ms or -1, the key's address or 0) of one message, read from
    its C struct without following any pointer in it."""
