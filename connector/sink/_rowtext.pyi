from collections.abc import Callable, Sequence
from typing import Any

KINDS: frozenset[str]

class RowText:
    """A flat JSON object's COPY text row, else `fallback(value)` (connector/sink/_rowtext.c)."""

    fallback: Callable[[bytes | None], Any]

    def __init__(self, columns: Sequence[tuple[str, str, int, bool]], fallback: Callable[[bytes | None], Any]) -> None: ...
    def __call__(self, value: bytes | None) -> Any: ...
