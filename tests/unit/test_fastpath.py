"""The compiled fast path agrees with the general mapping wherever it answers, never
answers a record holding a field the table's watch must be told of (no column takes it,
the field rules do not leave it), and answers for the common record (every column named
with its usual type)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.errors import MappingError
from connector.fields import FieldRules
from connector.models import Record
from connector.sink.copytext import CONVERTERS, parse_row
from connector.sink.mapping import ColumnSpec, Op, RowMapper, as_op
from tests.copyrows import same_effect

NAMES = ["id", "name", "at", "n", "x", "flag", "Ü ñ", 'q"uote\'s', "a_b"]  # a_b: `b` of `a` flattened
# Text as users have it: every character COPY or JSON escapes, made common, among any others.
texts = st.text(st.sampled_from('"\\\t\n\r\x00\x1féŁ東🙂 a/') | st.characters(), max_size=14)
scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
           | texts | st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22 10:00:00.5+02:00",
                                                      "2026-11-22T10:00", "2026-W47-1T10:00:00", "20261122T100000",
                                                      "2026-11-22T10:00:00 ", "tab\there", "back\\slash", "12.5",
                                                      "00000000-0000-0000-0000-000000000000", "aGVsbG8="]))


# Values of the type each kind takes, so most documents are ones the fast path answers.
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
TYPED = {
    "smallint": st.integers(-2**15, 2**15 - 1), "integer": st.integers(-2**31, 2**31 - 1),
    "bigint": st.integers(-2**63, 2**63 - 1), "numeric": st.integers(-2**70, 2**70) | st.floats(allow_nan=False,
                                                                                                allow_infinity=False),
    "float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-2**60, 2**60),
    # a float4's values, and doubles beyond its range or precision (strtof rounds, underflows or overflows them)
    "real": st.floats(width=32, allow_nan=False, allow_infinity=False) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([3.4028235e38, 3.5e38, 1e-45, 1.4e-45, 1e-39, 1.1754943508222875e-38, 0.1, -0.0]),
    "boolean": st.booleans(), "text": texts, "varchar": texts,
    "timestamptz": st.sampled_from(["2026-11-22T10:00:00Z", "2026-11-22 10:00:00.5+02:00", "2026-11-22T10:00",
                                    "2026-02-30T10:00:00Z", "2026-11-22T10:00:00 PST", "0001-01-01T00:00:00+15:59",
                                    "9999-12-31T23:59:59.999999-15:59", "2026-11-22T10:00:00+16:00",
                                    "1969-12-31T23:59:59.000001Z", "2000-01-01T00:00:00Z", "2024-02-29T12:00-03:30"]),
    "timestamp": st.sampled_from(["2026-11-22T10:00:00", "2026-11-22T10:00:00+01:00"]),
    "date": st.sampled_from(["2026-11-22", "2026-13-01", "20261122", "2026-W47-1", " 2026-11-22", "2026-11-22\x00",
                             "0001-01-01", "9999-12-31"]), "time": st.sampled_from(["10:00:00", "25:00"]),
    "uuid": st.sampled_from(["00000000-0000-0000-0000-000000000000", "not-a-uuid", "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                             "1B4E28BA-2FA1-11D2-883F-0016D3CCA427", "{1b4e28ba-2fa1-11d2-883f-0016d3cca427}",
                             "1b4e28ba2fa111d2883f0016d3cca427", "1b4e28ba-2fa1-11d2-883f-0016d3cca42"]),
    "bytea": st.sampled_from(["aGVsbG8=", "!!"]),
    "json": json_values, "jsonb": json_values,
    "other": texts | scalars,
}
# Arrays of the types people send (a nested array is a dimension; jsonb[] elements are any JSON).
ARRAY_KINDS = ["text[]", "bigint[]", "numeric[]", "json[]", "uuid[]", "boolean[]", "timestamptz[]"]
TYPED.update({kind: st.lists(st.none() | TYPED[kind[:-2]], max_size=4) | st.lists(st.lists(TYPED[kind[:-2]],
                                                                                            min_size=2, max_size=2),
                                                                                   max_size=2) | texts
              for kind in ARRAY_KINDS})


@st.composite
def mappers(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    columns = [ColumnSpec(n, draw(st.sampled_from(sorted(CONVERTERS) + ARRAY_KINDS)), draw(st.booleans()), draw(st.booleans()),
                          draw(st.none() | st.integers(1, 12))) for n in names]
    columns = [c if c.kind in ("text", "other") else ColumnSpec(c.name, c.kind, c.nullable, c.has_default)
               for c in columns]
    mode = draw(st.sampled_from(["append", "upsert"]))
    keys = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)) if mode == "upsert" else []
    zone = draw(st.sampled_from([UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")]))  # SINK_TIMEZONE
    rules = draw(st.sampled_from([None, FieldRules(exclude=("secret",)), FieldRules(include=(*names, "other"))]))
    flatten_with = draw(st.sampled_from([None, "_"]))  # SINK_FLATTEN
    return RowMapper(columns, mode, keys, zone=zone, watch=Told(rules) if rules else None, flatten_with=flatten_with)


class Told:
    """A FieldWatch that keeps what it is told and counts each field's values, as the
    catalog's (SINK_AUTO_EVOLVE off): the C step passes over a field met before."""

    def __init__(self, rules: FieldRules) -> None:
        self.rules, self.fields, self.counts = rules, [], Counter()

    def met(self, record, fields):
        self.fields.append(fields)
        self.counts.update(list(fields))  # a dict would add its values

    def counted(self, names):
        if not set(names) <= {name for fields in self.fields for name in fields}:
            return False
        self.counts.update(names)
        return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def agreement(data):
    """The property: wherever the fast path answers, it answers as the general path."""
    mapper = data.draw(mappers())
    names = tuple(c.name for c in mapper.columns)
    kinds = {c.name: c.kind for c in mapper.columns}
    # Three documents in four have every field of its column's type, or null (a tenth of the time).
    typed = data.draw(st.integers(0, 3)) > 0
    typed_or_null = {n: st.integers(0, 9).flatmap(lambda tenth, kind=kinds[n]: st.none() if tenth == 0 else TYPED[kind])
                     for n in names}
    values = {n: typed_or_null[n] if typed else TYPED[kinds[n]] | scalars for n in names}
    left_out = data.draw(st.sets(st.sampled_from(names))) if data.draw(st.booleans()) else set()  # maybe absent
    document = data.draw(st.fixed_dictionaries({n: values[n] for n in names if n not in left_out},
                                               optional={"other": scalars, "secret": scalars,
                                                         "a": st.fixed_dictionaries({"b": scalars}),
                                                         "obj": TYPED["json"], **{n: values[n] for n in left_out}}))
    # Producers write JSON both ways: non-ASCII as `\u` escapes (json.dumps' default) and as raw UTF-8.
    # Integers past 64 bits too. A lone surrogate has no raw UTF-8 form: it stays escaped.
    escaped = data.draw(st.booleans()) or any("\ud800" <= ch <= "\udfff" for ch in json.dumps(document, ensure_ascii=False))
    value = json.dumps(document, ensure_ascii=escaped).encode()
    record = Record("t", 1, 7, b'{"id": 1}', value)
    try:
        expected = mapper.general(record)
    except MappingError:
        expected = None
    if mapper.fast is None:  # a name msgspec cannot match: the general path maps every record
        assert any('"' in name for name in names)
        return
    watch = mapper._watch
    told = watch.fields[-1] if watch and watch.fields else {}  # what the general path told of this record, if anything
    before = Counter(watch.counts) if watch else Counter()
    hit = mapper.fast(value)
    counted = watch.counts - before if watch else Counter()
    answered.append(hit is not None)
    # the fast path counts a field no column takes only where it answers, as the general path counted it: it
    # answers such a record only once the watch was told of its fields (the general path above told it)
    assert counted == (Counter(list(told)) if hit is not None and expected is not None else Counter())
    if hit is not None:
        assert expected is not None
        assert same_effect(as_op(hit, names), expected, kinds) and same_effect(mapper(record), expected, kinds)
        # append: the row alone, unless the record leaves a column out (then the op names those it has)
        assert isinstance(hit, (str, bytes)) == (mapper.mode == "append" and expected.columns == names)


answered: list[bool] = []  # whether the fast path answered, per document `agreement` drew


def test_fast_path_agrees_with_the_general_path():
    """The property holds, and is only as strong as the share of documents the fast path
    answered: a fifth at least of 300 or more (counted in this very run; 25–39 % in sixteen
    seeds. With half the documents typed, 19–31 %, and a quarter failed two seeds in 16)."""
    answered.clear()
    agreement()
    assert len(answered) >= 300 and sum(answered) >= len(answered) // 5, (sum(answered), len(answered))


# A table the C step does not serve (a json column), every column but the key optional.
LEAVABLE = [ColumnSpec("id", "bigint", nullable=False), ColumnSpec("doc", "json"),
            *(ColumnSpec(f"c_{kind}", kind, nullable=n % 2 == 0, has_default=n % 2 == 1)
              for n, kind in enumerate(sorted(CONVERTERS)) if kind != "json")]
partial_hits: list[bool] = []


@settings(max_examples=300, deadline=None)
@given(mode=st.sampled_from(["append", "upsert"]), data=st.data())
def test_the_python_path_answers_records_that_leave_out_columns(mode, data):
    """The Python fast path answers a record that leaves out optional columns (a
    default, or nullable) with the general path's op, naming the columns it has."""
    mapper = RowMapper(LEAVABLE, mode, ["id"] if mode == "upsert" else [])
    present = data.draw(st.lists(st.sampled_from(LEAVABLE[1:]), unique=True))
    document = {c.name: data.draw(TYPED[c.kind] | scalars if data.draw(st.integers(0, 4)) == 0 else TYPED[c.kind])
                for c in [LEAVABLE[0], *present]}  # a fifth of any type: what the fast path leaves too
    value = json.dumps(document).encode()
    hit = mapper.fast(value)
    try:
        expected = mapper.general(Record("t", 0, 0, None, value, None, ()))
    except MappingError:
        expected = None
    names = tuple(c.name for c in LEAVABLE)
    if hit is not None:
        assert expected is not None and same_effect(as_op(hit, names), expected, {c.name: c.kind for c in LEAVABLE})
        partial_hits.append(len(expected.columns) < len(names))


def test_the_python_path_answered_such_records():
    """The property above holds, and is only as strong as the records it answered that
    leave out columns: 30 of 300 at least."""
    partial_hits.clear()
    test_the_python_path_answers_records_that_leave_out_columns()
    assert sum(partial_hits) >= 30, (sum(partial_hits), len(partial_hits))


def test_a_record_leaving_out_columns_with_a_field_the_python_path_defers_on():
    """A timestamp the general path renders anew (a week date): the record is the general
    path's, also when it leaves out columns."""
    mapper = RowMapper(LEAVABLE, "append")
    value = b'{"id": 1, "c_timestamptz": "2026-W47-1T10:00:00Z", "c_text": "a"}'
    assert mapper.fast(value) is None
    assert mapper.general(Record("t", 0, 0, None, value, None, ())).columns == ("id", "c_text", "c_timestamptz")


def test_the_common_record_takes_the_fast_path():
    columns = [ColumnSpec("id", "bigint", nullable=False), ColumnSpec("name", "text"), ColumnSpec("at", "timestamptz"),
               ColumnSpec("amount", "numeric"), ColumnSpec("ratio", "float"), ColumnSpec("ok", "boolean")]
    mapper = RowMapper(columns, "upsert", ["id"])
    value = b'{"id": 7, "name": "a b", "at": "2026-11-22T10:00:00.5Z", "amount": 1.25, "ratio": 0.5, "ok": true}'
    assert mapper.fast is not None
    op = mapper.fast(value)
    text = Op("upsert", tuple(c.name for c in columns), "7\ta b\t2026-11-22T10:00:00.5Z\t1.25\t0.5\tt\n", ("7",))
    assert isinstance(op.row, bytes) and same_effect(op, text, {c.name: c.kind for c in columns})  # the C step's


REALISTIC = ["Zoë Ångström", 'say "hi"', "C:\\Users\\zoë", "tab\there", "two\nlines", "cr\r\nlf", "Łódź — 東京 🙂",
             "back\\slash\\", "\\N", "\x7f\x01 controls"]


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["u-escapes", "raw-utf8"])
@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_text_as_users_have_it_takes_the_fast_path(ensure_ascii, mode):
    """Non-ASCII letters, quotes, backslashes, tabs, newlines and control characters,
    JSON-escaped or raw: the fast path answers every one, as the general path does, and
    PostgreSQL's COPY reading of the row gives back the text. Only `\u0000` defers."""
    columns = [ColumnSpec("name", "text", nullable=False), ColumnSpec("id", "bigint"), ColumnSpec("doc", "json"),
               ColumnSpec("note", "text", length=40), ColumnSpec("blob", "bytea"), ColumnSpec("tags", "other")]
    mapper = RowMapper(columns, mode, ["name"] if mode == "upsert" else [])
    names = tuple(c.name for c in columns)
    for i, text in enumerate(REALISTIC):
        document = {"name": text, "id": i, "doc": {"k": text, "n": [1, 2.5, None]}, "note": None if i % 3 == 0 else text[::-1],
                    "blob": "aGVsbG8=", "tags": "{" + text.replace("\\", "") + "}"}
        value = json.dumps(document, ensure_ascii=ensure_ascii).encode()
        record = Record("t", 0, i, None, value)
        fast = mapper.fast(value)
        assert fast is not None, text
        assert as_op(fast, names) == mapper.general(record)
        fields = parse_row(as_op(fast, names).row)
        assert fields[0] == text and fields[3] == document["note"] and json.loads(fields[2]) == document["doc"]
        assert fields[4] == "\\x68656c6c6f"
    nul = json.dumps({"name": "a\x00b", "id": 1}).encode()
    assert mapper.fast(nul) is None
    with pytest.raises(MappingError, match="NUL"):
        mapper(Record("t", 0, 99, None, nul))
