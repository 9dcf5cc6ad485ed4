from collections.abc import Callable, Sequence
from typing import Any

def columns(items: Sequence[Any], values: Sequence[bytes | None], offset: Callable[[Any], int],
            timestamp: Callable[[Any], Any], key: Callable[[Any], bytes | None]
            ) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """A snapshot segment's columns, little-endian: offsets, timestamps (ms, -1: none),
    key and value lengths (-1: None), the keys and the values back to back
    (connector/backends/_columns.c)."""
