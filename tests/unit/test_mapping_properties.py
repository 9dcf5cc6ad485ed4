"""Property: for any table shape and any record — arbitrary JSON, bytes that are not
JSON or not UTF-8, missing or null fields, any key — the mapper either returns a row
for the table's columns or raises MappingError naming the record and a reason. It never
raises anything else (which would crash the loop) and never drops a field it accepted."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.errors import MappingError
from connector.models import Record
from connector.sink.copytext import CONVERTERS
from connector.sink.mapping import REJECT, ColumnSpec, Op, RowMapper, tolerant
from tests.copyrows import binary_values

NAMES = ["id", "name", "at", "n", "doc", "flag", "Ü ñ", 'q"uote']
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
# Strings that look like what columns expect, so conversions succeed often enough too.
plausible = st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22", "10:00:00", "12.5", "42", "true",
                             "00000000-0000-0000-0000-000000000000", "aGVsbG8=", "nul \x00 byte", "x" * 300])


@st.composite
def tables(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    columns = [ColumnSpec(name, draw(st.sampled_from(sorted(CONVERTERS))), draw(st.booleans()), draw(st.booleans()),
                          draw(st.none() | st.integers(1, 20))) for name in names]
    columns = [c if c.kind in ("text", "other") or c.length is None else
               ColumnSpec(c.name, c.kind, c.nullable, c.has_default) for c in columns]
    mode = draw(st.sampled_from(["append", "upsert"]))
    keys = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)) if mode == "upsert" else []
    return RowMapper(columns, mode, keys)


@st.composite
def records(draw, mapper):
    names = [c.name for c in mapper.columns]
    kind = draw(st.sampled_from(["object", "any-json", "bytes", "tombstone"]))
    if kind == "object":
        doc = draw(st.dictionaries(st.sampled_from(names + ["other"]), json_values | plausible, max_size=6))
        value = orjson.dumps(doc)
    elif kind == "any-json":
        value = orjson.dumps(draw(json_values))
    elif kind == "bytes":
        value = draw(st.binary(max_size=40))
    else:
        value = None
    key = draw(st.none() | st.binary(max_size=10) | json_values.map(orjson.dumps) | plausible.map(str.encode))
    return Record("topic", draw(st.integers(0, 99)), draw(st.integers(0, 2**40)), key, value)


def values_of(op, mapper):
    """An op's values by column: a text row's as text, a binary row's (the C step's) as PostgreSQL reads them."""
    if not isinstance(op.row, bytes):
        return op.values
    kinds = {c.name: c.kind for c in mapper.columns}
    return dict(zip(op.columns, binary_values(op.row, [kinds[c] for c in op.columns]), strict=True))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_record_is_a_row_or_a_named_mapping_error(data):
    mapper = data.draw(tables())
    record = data.draw(records(mapper))
    try:
        op = mapper(record)
    except MappingError as exc:
        assert (exc.topic, exc.partition, exc.offset) == (record.topic, record.partition, record.offset)
        assert exc.reason and f"{record.topic}[{record.partition}]@{record.offset}" in str(exc)
        return
    assert isinstance(op, Op) and op.kind in ("insert", "upsert", "delete")
    values = values_of(op, mapper)
    assert set(values) <= {c.name for c in mapper.columns}
    if op.kind == "delete":
        assert set(values) == set(mapper.key_columns)
        return
    document = orjson.loads(record.value)
    for column in mapper.columns:
        if column.name in document and column.name not in mapper.key_columns:
            assert column.name in values  # a field the table has is never silently dropped
        if not column.nullable:
            assert values.get(column.name, "absent") is not None
    for value in values.values():
        assert not (isinstance(value, str) and "\x00" in value)  # PostgreSQL cannot store NUL in text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_tolerant_mapping_never_raises_and_every_reject_has_a_reason(data):
    """ERRORS_TOLERANCE=all: any record is a row or a dead letter with a reason — the
    loop never sees an exception from the mapping."""
    mapper = data.draw(tables())
    record = data.draw(records(mapper))
    op = tolerant(mapper)(record)
    if op.kind == REJECT:
        assert op.values["error_class"] == "MappingError" and op.values["error"]
        return
    assert op == mapper(record)
