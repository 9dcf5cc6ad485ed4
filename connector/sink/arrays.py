"""JSON arrays into PostgreSQL arrays (`text[]`, `bigint[]`, `numeric[]`, `jsonb[]`,
`uuid[]`, any `T[]`). Pure.

A column of an array type takes a JSON array; each element goes through its element
type's converter and the array is written as PostgreSQL's array literal: every element
quoted (a quoted element is any type's text, so `"NULL"` and `""` stay strings; only a
JSON null is an unquoted NULL), `"` and `\\` escaped with a backslash. A nested array is
one more dimension (`[[1,2],[3,4]]` is `{{"1","2"},{"3","4"}}`; PostgreSQL refuses a
ragged one), except in `json[]` and `jsonb[]`, whose elements are JSON values whatever
they hold. A string is taken as an array literal already (PostgreSQL parses it). The
literal is raw text: the caller escapes it for COPY (it always needs it: the quoting adds
backslashes a JSON value without one does not have).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Converter = Callable[[Any], str]


def is_array(kind: str) -> bool:
    return kind.endswith("[]")


def element_kind(kind: str) -> str:
    return kind[:-2]


def literal_converter(element: Converter, kind: str) -> Converter:
    """The array literal of a JSON array whose elements `element` converts (`kind`: the
    element kind; bytea's converter gives its text escaped for COPY already)."""
    json_elements, strip = kind in ("json", "jsonb"), 1 if kind == "bytea" else 0

    def items(values: list[Any]) -> str:
        parts = []
        for value in values:
            if value is None:
                parts.append("NULL")
            elif type(value) is list and not json_elements:
                parts.append(items(value))
            else:
                parts.append('"' + element(value)[strip:].replace("\\", "\\\\").replace('"', '\\"') + '"')
        return "{" + ",".join(parts) + "}"

    def convert(value: Any) -> str:
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        return items(value)

    return convert
