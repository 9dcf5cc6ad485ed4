"""Which fields of a record's value fill which columns: SINK_FLATTEN (nested objects
become `parent_child` fields first), then SINK_FIELDS_INCLUDE, SINK_FIELDS_EXCLUDE and
SINK_FIELDS_RENAME, which name fields as flattened. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldRules:
    """SINK_FIELDS_INCLUDE (None: every field), SINK_FIELDS_EXCLUDE and SINK_FIELDS_RENAME
    (old -> new): which fields of a record's value fill which columns."""

    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    flatten: str | None = None  # SINK_FLATTEN's separator when on

    def source(self, column: str) -> str | None:
        """The field that fills `column`, or None when no field may."""
        renamed = dict((new, old) for old, new in self.rename)
        field = renamed.get(column, None if column in dict(self.rename) else column)
        return field if field is not None and self.takes(field) else None

    def takes(self, field: str) -> bool:
        """Whether `field` may fill a column (or be told of, when none takes it): not
        SINK_FIELDS_EXCLUDEd, and named by SINK_FIELDS_INCLUDE when that is set."""
        return field not in self.exclude and (self.include is None or field in self.include)


def flatten(document: dict[str, Any], separator: str, prefix: str = "") -> dict[str, Any]:
    """Nested objects' fields as `parent<separator>child` fields, at any depth; other
    values (arrays, an empty object) stay as they are."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{separator}{key}" if prefix else key
        if isinstance(value, dict) and value:
            flat.update(flatten(value, separator, name))
        else:
            flat[name] = value
    return flat


def renames(value: Any) -> Any:
    """SINK_FIELDS_RENAME: `old:new,…`."""
    if not isinstance(value, str):
        return value
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        old, sep, new = (part.strip() for part in item.partition(":"))
        if not sep or not old or not new:
            raise ValueError(f"expected old:new, got {item!r}")
        pairs.append((old, new))
    for index in (0, 1):
        seen = [pair[index] for pair in pairs]
        twice = sorted({name for name in seen if seen.count(name) > 1})
        if twice:
            raise ValueError(f"{', '.join(map(repr, twice))} named twice")
    return tuple(pairs)


EVERY_FIELD = FieldRules()
