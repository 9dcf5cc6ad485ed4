from collections.abc import Callable, Sequence
from typing import Any

KINDS: frozenset[str]

class RowBinary:
    """A flat JSON object's COPY binary row, else `fallback(value)` (connector/sink/_rowbinary.c)."""

    fallback: Callable[[bytes | None], Any]

    # a column: (name, kind, varchar's length or -1, nullable[, optional: may be absent])
    def __init__(self, columns: Sequence[tuple[str, str, int, bool] | tuple[str, str, int, bool, bool]],
                 fallback: Callable[[bytes | None], Any],
                 naive_is_utc: bool = False, keys: Sequence[int] = (),
                 op: tuple[type, str, tuple[str, ...]] | None = None,
                 skip: Callable[[tuple[str, ...]], bool] | None = None) -> None: ...
    def __call__(self, value: bytes | None) -> Any: ...
