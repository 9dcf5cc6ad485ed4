"""The common record's row, without a Python call per column. Pure.

Most records of a stream have one shape: a JSON object naming every value column with
the type its column expects. For such a table this module compiles one function that
maps a value straight to its COPY text row (and, in upsert mode, its key) with the
column loop unrolled and each common type's check written inline — a Python call per
column is most of the cost of mapping a record at several hundred thousand a second.

The function returns None for anything else (a field absent or null, another type, a
value that needs escaping or fails to parse): the general path in `RowMapper` then maps
the record, and raises its MappingError when there is one. So the fast path decides
nothing on its own: it agrees with the general path wherever it answers, which
`tests/unit/test_fastpath.py` checks on arbitrary records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from connector.sink.copytext import ESCAPED, INT_BITS, KEY_FORMS, Converter

FastPath = Callable[[bytes], Any]  # value -> the op, or None


def _check(kind: str, length: int | None, i: int) -> str:
    """Python source computing `t{i}` from `v{i}`, or returning None."""
    if kind in INT_BITS:
        bits = INT_BITS[kind]
        return (f"if type(v{i}) is not int or not {-(2 ** (bits - 1))} <= v{i} <= {2 ** (bits - 1) - 1}: return None\n"
                f"t{i} = str(v{i})")
    if kind == "text" and length is None:
        return f"if type(v{i}) is not str or not clean: return None\nt{i} = v{i}"
    if kind == "numeric":
        return (f"if type(v{i}) is float: t{i} = repr(v{i})\n"  # JSON has no NaN or infinity
                f"elif type(v{i}) is int: t{i} = str(v{i})\nelse: return None")
    if kind == "float":
        return f"if type(v{i}) is not float: return None\nt{i} = repr(v{i})"
    if kind == "boolean":
        return f"if v{i} is True: t{i} = 't'\nelif v{i} is False: t{i} = 'f'\nelse: return None"
    if kind == "timestamptz":  # copytext.is_plain_timestamp, inlined; parsed to validate
        return (f"if type(v{i}) is not str or len(v{i}) < 16 or v{i}[4] != '-' or v{i}[7] != '-' "
                f"or v{i}[10] not in 'T ' or v{i}[13] != ':': return None\nfrom_iso(v{i})\nt{i} = v{i}")
    guard = " or not clean" if kind in ESCAPED else ""
    return f"if v{i} is None{guard}: return None\nt{i} = convert[{i}](v{i})"


def compile_fast_path(columns: Sequence[tuple[str, str, int | None, Converter]], op: type, op_kind: str,
                      key_columns: Sequence[str] = ()) -> FastPath:
    """The fast path for (name, kind, length, converter) columns, in table order: it
    returns `op(op_kind, column names, row, key, None)`, the key formed as `RowMapper`
    forms it (empty without `key_columns`)."""
    names = [name for name, _, _, _ in columns]
    kinds = {name: kind for name, kind, _, _ in columns}
    lines = ["def fast(value):", " clean = b'\\\\' not in value", " try:", "  document = loads(value)",
             "  if type(document) is not dict: return None", "  get = document.get"]
    for i, (name, kind, length, _) in enumerate(columns):
        lines.append(f"  v{i} = get({name!r})")
        lines += ["  " + line for line in _check(kind, length, i).splitlines()]
    lines.append(" except (ValueError, TypeError, OverflowError): return None")
    row = "\\t".join(f"{{t{i}}}" for i in range(len(columns)))
    key = ", ".join(f"t{names.index(k)}" if kinds[k] not in KEY_FORMS else f"key_form[{kinds[k]!r}](t{names.index(k)})"
                    for k in key_columns)
    lines.append(f" return new(op, (kind, names, f'{row}\\n', ({key}{',' if key_columns else ''}), None))")
    scope: dict[str, Any] = {"loads": orjson.loads, "from_iso": datetime.fromisoformat, "new": tuple.__new__,
                             "op": op, "kind": op_kind, "names": tuple(names),
                             "convert": [c for _, _, _, c in columns], "key_form": KEY_FORMS}
    exec("\n".join(lines), scope)  # noqa: S102 - source built above from column kinds; names only as repr() literals
    fast: FastPath = scope["fast"]
    return fast
