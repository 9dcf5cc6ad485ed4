"""The fast path's C step writes COPY binary rows (connector/sink/_rowbinary.c): PostgreSQL
stores from them exactly what it stores from the Python path's COPY text rows, and a
checkpoint mixing both formats with rejects and rows the database refuses writes exactly
the rows it should. Real PostgreSQL."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.formats import decode_json
from connector.models import Record
from connector.routing import TableConfig
from connector.sink.connection import engine_for
from connector.sink.mapping import ColumnSpec, RowMapper, rejection
from connector.sink.statements import BINARY, CopyBatch, copy_sql
from connector.sink.table import load_target
from connector.sink.writer import BatchWriter
from tests.unit.test_rowbinary import COLUMNS, JSONB_TABLE, TEXT_ARRAY_TABLE, jsonb_texts, text_arrays

pytestmark = pytest.mark.integration

# test_rowbinary's COLUMNS as a table: every kind the C step writes.
SQL_TYPES = {"bigint": "bigint", "smallint": "smallint", "integer": "integer", "numeric": "numeric",
             "float": "double precision", "real": "real", "boolean": "boolean", "text": "text",
             "timestamptz": "timestamptz", "date": "date", "uuid": "uuid"}


def ddl(name: str) -> str:
    columns = ", ".join(f'"{c.name}" {f"varchar({c.length})" if c.length else SQL_TYPES[c.kind]}'
                        f'{"" if c.nullable else " NOT NULL"}' for c in COLUMNS)
    return f"CREATE TABLE {name} ({columns})"


@pytest.fixture(scope="module")
def twin_tables(services):
    """Two tables of COLUMNS: one for binary rows, one for text rows."""
    names = [f"rows_{form}_{uuid.uuid4().hex[:6]}" for form in ("binary", "text")]
    for name in names:
        services.sql(ddl(name))
    return names


# Values the C step takes, near the edges of each kind: text with every escape and non-ASCII,
# numbers as JSON writes them, timestamps at the ends of the range and of the offsets.
VALID = {
    "bigint": st.integers(-2**63, 2**63 - 1), "smallint": st.integers(-2**15, 2**15 - 1),
    "numeric": st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?", fullmatch=True),
    "float": st.floats(allow_nan=False, allow_infinity=False), "real": st.floats(width=32, allow_nan=False,
                                                                              allow_infinity=False),
    "boolean": st.booleans(), "text": st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=12),
    "timestamptz": st.builds("{}T{:02d}:{:02d}:{:02d}{}{}".format, st.sampled_from(["2026-11-22", "0001-01-01",
                                                                                     "9999-12-31", "2024-02-29"]),
                             st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
                             st.sampled_from(["", ".5", ".000001", ".123456"]),
                             st.sampled_from(["Z", "+15:59", "-15:59", "+05:30", "-00:00", ""])),  # "": UTC's wall time
    "date": st.sampled_from(["2026-11-22", "0001-01-01", "9999-12-31", "2000-01-01", "1999-12-31"]),
    "uuid": st.uuids().map(str),
}


@st.composite
def valid_documents(draw):
    """A JSON object of COLUMNS, each field valid for its column or (if nullable) null,
    its fields in any order, written with `\\u` escapes or as raw UTF-8."""
    fields = {c.name: None if c.nullable and draw(st.integers(0, 9)) == 0 else draw(VALID[c.kind]) for c in COLUMNS}
    fields["note"] = fields["note"] if fields["note"] is None else fields["note"][:12]
    items = draw(st.permutations(list(fields.items())))
    body = ", ".join(f"{json.dumps(k)}: {v if k == 'amount' and v is not None else json.dumps(v, ensure_ascii=False)}"
                     for k, v in items)
    text = "{" + body + "}"
    return (json.dumps(json.loads(text)) if draw(st.booleans()) else text).encode()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(valid_documents(), min_size=20, max_size=40))
def test_the_database_stores_the_same_from_either_format(services, twin_tables, documents):
    """Documents the C step answers (realistic text, numbers as JSON writes them, edge
    timestamps and offsets): COPY of its binary rows and COPY of the Python path's text
    rows leave the same table, as PostgreSQL prints it."""
    mapper = RowMapper(COLUMNS, "append", [])
    c_step, python = mapper.fast, mapper.fast.fallback
    answered = [(v, row) for v in documents if isinstance(row := c_step(v), bytes)]
    assert len(answered) >= len(documents) * 3 // 4, "the C step answers most valid documents"
    names = tuple(c.name for c in COLUMNS)
    values = [v for v, _ in answered]
    batches = [CopyBatch(names, [row for _, row in answered], format=BINARY), CopyBatch(names, list(map(python, values)))]
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")  # SINK_TIMEZONE's default: the wall time of a timestamp without an offset
        for name, batch in zip(twin_tables, batches, strict=True):
            conn.execute(f"TRUNCATE {name}")
            with conn.cursor() as cur, cur.copy(copy_sql(sa.Table(name, sa.MetaData()), names, batch.format)) as copy:
                copy.write(batch.payload())
        stored = [conn.execute(f"SELECT t::text FROM {name} t ORDER BY ctid").fetchall() for name in twin_tables]
    assert len(stored[0]) == len(values) and stored[0] == stored[1]


JSONB_SEEN = [b'{"b": [1.5, 0.1, 17, -3, 1.0], "a": null, "a": true}', b'"\\u00e9\\ud83d\\ude00 \\"q\\"\\t\\\\ \\/"',
              '{"city": "Zürich", "tags": ["a", "b c"], "ok": true, "size": 3}'.encode(), b"123456789012345678",
              b'{"x": {"y": [null, {}, []]}, "n": 2.5e-3}', b"0.30000000000000004"]
TEXT_ARRAYS_SEEN = ['["Zoë \\"q\\"", "back\\\\slash", "tab\\there", "two\\nlines", "NULL", "", "{a,b}", null]',
                    "[]", '["東京 🙂", "\\u00e9\\ud83d\\ude00"]', '[["nested"]]']


def stored_alike(services, table: list[ColumnSpec], sql_types: str, docs: list[bytes]) -> list[bool]:
    """The documents `{"id": i, <the second column>: doc}` the C step answers, COPYed as
    its binary rows into one new table and as the Python path's text rows into its twin:
    both tables print the same. Which documents were answered."""
    mapper = RowMapper(table, "append", [])
    values = [b'{"id": %d, "%s": %s}' % (i, table[1].name.encode(), doc) for i, doc in enumerate(docs)]
    answered = [(v, row) for v in values if isinstance(row := mapper.fast(v), bytes)]
    names = tuple(c.name for c in table)
    batches = [CopyBatch(names, [row for _, row in answered], format=BINARY),
               CopyBatch(names, [mapper.fast.fallback(v) for v, _ in answered])]
    tables = [f"twin_{form}_{uuid.uuid4().hex[:6]}" for form in ("binary", "text")]
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        for name, batch in zip(tables, batches, strict=True):
            conn.execute(f"CREATE TABLE {name} ({sql_types})")
            with conn.cursor() as cur, cur.copy(copy_sql(sa.Table(name, sa.MetaData()), names, batch.format)) as copy:
                copy.write(batch.payload())
        stored = [conn.execute(f"SELECT t::text FROM {name} t ORDER BY id").fetchall() for name in tables]
        for name in tables:
            conn.execute(f"DROP TABLE {name}")
    assert len(stored[0]) == len(answered) and stored[0] == stored[1]
    return [isinstance(mapper.fast(v), bytes) for v in values]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(jsonb_texts, min_size=30, max_size=60))
def test_a_jsonb_column_stores_the_same_from_either_format(services, drawn):
    """jsonb values the C step answers, sent as written (numbers, escapes, a key given
    twice, nesting): PostgreSQL stores from its binary rows what it stores from the
    Python path's text rows (orjson's), as it prints them."""
    answered = stored_alike(services, JSONB_TABLE, "id bigint NOT NULL, doc jsonb", [t.encode() for t in drawn]
                            + JSONB_SEEN)
    assert answered[-len(JSONB_SEEN):] == [True, True, True, True, False, True]  # 2.5e-3: an exponent


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(text_arrays, min_size=30, max_size=60))
def test_a_text_array_column_stores_the_same_from_either_format(services, drawn):
    """text[] values the C step answers (arrays of strings and nulls, as users have
    text): PostgreSQL stores from their binary form what it stores from the Python
    path's array literals, as it prints them."""
    answered = stored_alike(services, TEXT_ARRAY_TABLE, "id bigint NOT NULL, tags text[]",
                            [t.encode() for t in drawn + TEXT_ARRAYS_SEEN])
    assert answered[-len(TEXT_ARRAYS_SEEN):] == [True, True, True, False]  # nested: the Python path's


def test_a_checkpoint_of_both_formats_rejects_and_refused_rows(services):
    """Binary rows, text rows (an offset written without its colon takes the Python path), a
    record the mapping rejected, and one row of each format the database refuses (a
    CHECK): the refused and rejected records are the writer's rejections, by index, and
    the table holds every other row exactly once."""
    name = f"mixed_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (id bigint NOT NULL, name text, at timestamptz, n integer CHECK (n >= 0))")
    columns = [ColumnSpec("id", "bigint", nullable=False), ColumnSpec("name", "text"), ColumnSpec("at", "timestamptz"),
               ColumnSpec("n", "integer")]
    mapper = RowMapper(columns, "append", [])
    texts = ["Zoë \"quoted\"", "C:\\Users\\zoë", "tab\there", "two\nlines", "東京 🙂", None]
    ops = []
    for i in range(60):
        at = "2026-11-22T10:00:00+0100" if i % 5 == 0 else "2026-11-22T10:00:00.5+01:00"
        n = -1 if i in (7, 10) else i  # 7: a binary row, 10: a text row the CHECK refuses
        value = json.dumps({"id": i, "name": texts[i % 6], "at": at, "n": n}, ensure_ascii=i % 2 == 0).encode()
        ops.append(rejection("MappingError", "bad") if i == 33 else mapper.fast(value))
    assert isinstance(ops[7], bytes) and isinstance(ops[10], str)
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        writer = BatchWriter(conn, load_target(conn, TableConfig((None, name), "append", ())))
        counts = writer.write(ops)
    engine.dispose()
    assert sorted(writer.rejected) == [7, 10, 33] and counts["rows"] == 57
    stored = services.sql(f"SELECT id, name, at::text, n FROM {name} ORDER BY id")
    expected = [(i, texts[i % 6], "2026-11-22 09:00:00+00" if i % 5 == 0 else "2026-11-22 09:00:00.5+00", i)
                for i in range(60) if i not in (7, 10, 33)]
    assert stored == expected


def test_an_upsert_checkpoint_of_both_formats(services):
    """Upserts keyed by an integer: binary rows (the C step's) and text rows, a key's
    records in either format one after another, a tombstone, a rejected record, a binary
    row the database refuses alone and one refused after the same key's earlier record:
    the table is what applying the records one at a time leaves, and the refused and
    rejected records are exactly the writer's rejections."""
    name = f"upserts_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (id bigint PRIMARY KEY, name text, at timestamptz, n integer CHECK (n >= 0))")
    services.sql(f"INSERT INTO {name} SELECT g, 'stale', NULL, 0 FROM generate_series(0, 9) g")
    columns = [ColumnSpec("id", "bigint", nullable=False), ColumnSpec("name", "text"), ColumnSpec("at", "timestamptz"),
               ColumnSpec("n", "integer")]
    mapper = RowMapper(columns, "upsert", ["id"])
    texts = ["Zoë \"quoted\"", "C:\\Users\\zoë", "tab\there", "two\nlines", "東京 🙂", None]
    # (key, n, offset written without its colon: the Python path's text row), in partition order
    records = [(1, 1, False), (12, 2, False), (1, 3, True), (3, 4, True), (3, 5, False), (14, 6, False),
               (4, -1, False), (5, 7, False), (5, -1, False), (6, 8, False), (15, 9, True), (2, 10, False)]
    ops = []
    for i, (key, n, text_row) in enumerate(records):
        at = "2026-11-22T10:00:00+0100" if text_row else "2026-11-22T10:00:00.5+01:00"
        value = json.dumps({"id": key, "name": texts[i % 6], "at": at, "n": n}, ensure_ascii=i % 2 == 0).encode()
        ops.append(mapper.fast(value))
        assert isinstance(ops[-1].row, str if text_row else bytes)
    ops[9] = rejection("MappingError", "bad")  # key 6's record
    ops.append(mapper(Record("t", 0, 99, b'{"id": 12}', None)))  # a tombstone for key 12
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        writer = BatchWriter(conn, load_target(conn, TableConfig((None, name), "upsert", ("id",))))
        writer.write(ops)
    engine.dispose()
    assert sorted(writer.rejected) == [6, 8, 9]  # refused by the CHECK (alone, after key 5's first), rejected
    table = {k: ("stale", None, 0) for k in range(10)}
    for i, (key, n, text_row) in enumerate(records):
        if i not in (6, 8, 9):
            table[key] = (texts[i % 6], "2026-11-22 09:00:00+00" if text_row else "2026-11-22 09:00:00.5+00", n)
    del table[12]
    assert services.sql(f"SELECT id, name, at::text, n FROM {name} ORDER BY id") == sorted(
        (k, *row) for k, row in table.items())


def test_records_that_leave_out_columns_with_defaults(services):
    """Append into a table with an identity key and defaults that records leave out, in
    three shapes: the C step answers each (an op naming the columns the record does), the
    writer COPYs each shape apart, and every row holds its record's values with the
    identity, the default or NULL where the record is silent."""
    name = f"defaults_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event bigint NOT NULL, "
                 f"name text, loaded timestamptz NOT NULL DEFAULT '2001-02-03 04:05:06+00', note text DEFAULT 'none', "
                 f"n integer)")
    texts = ["Zoë \"quoted\"", "C:\\Users\\zoë", "tab\there", "two\nlines", "東京 🙂", None]
    documents = [{"event": i, "name": texts[i % 6], **({"note": texts[(i + 1) % 6]} if i % 3 == 1 else {}),
                  **({"n": i, "loaded": "2026-11-22T10:00:00Z"} if i % 3 == 2 else {})} for i in range(60)]
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        target = load_target(conn, TableConfig((None, name), "append", ()))
        mapper = target.mapper((), decode_json)
        ops = [mapper.fast(json.dumps(d, ensure_ascii=i % 2 == 0).encode()) for i, d in enumerate(documents)]
        assert {(op.columns, type(op.row)) for op in ops} == {
            (("event", "name"), bytes), (("event", "name", "note"), bytes), (("event", "name", "loaded", "n"), bytes)}
        counts = BatchWriter(conn, target).write(ops)
    engine.dispose()
    assert counts["rows"] == 60
    stored = services.sql(f"SELECT event, name, loaded::text, note, n FROM {name} ORDER BY event")
    assert stored == [(d["event"], d["name"], "2026-11-22 10:00:00+00" if "loaded" in d else "2001-02-03 04:05:06+00",
                       d.get("note", "none"), d.get("n")) for d in documents]
    assert services.sql(f"SELECT count(DISTINCT id) FROM {name}") == [(60,)]


def test_partial_upserts_keep_what_they_leave_out(services):
    """Upserts keyed by an integer that leave out nullable columns: binary ops of each
    column set; a stored key keeps the columns its record is silent on, a new key gets
    NULL or the default there, and a key's later record in the checkpoint that names
    fewer columns is applied after the earlier one (as one at a time)."""
    name = f"partial_{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {name} (id bigint PRIMARY KEY, name text, note text DEFAULT 'none', n integer)")
    services.sql(f"INSERT INTO {name} SELECT g, 'stale', 'kept', g FROM generate_series(0, 9) g")
    records = [{"id": 1, "name": "Zoë \"q\""}, {"id": 12, "name": "C:\\x", "n": 5}, {"id": 2, "note": "tab\there"},
               {"id": 13, "note": "東京"}, {"id": 3, "name": "a", "note": "b", "n": 30}, {"id": 3, "name": "two\nlines"},
               {"id": 14, "n": 7}, {"id": 14, "name": "x", "note": "y", "n": 8}]
    engine = engine_for(services.database_url)
    with engine.connect() as conn, conn.begin():
        target = load_target(conn, TableConfig((None, name), "upsert", ("id",)))
        ops = [target.mapper((), decode_json).fast(json.dumps(r, ensure_ascii=False).encode()) for r in records]
        assert all(isinstance(op.row, bytes) and op.columns == tuple(r) for op, r in zip(ops, records, strict=True))
        BatchWriter(conn, target).write(ops)
    engine.dispose()
    table = {k: {"name": "stale", "note": "kept", "n": k} for k in range(10)}
    for record in records:
        table.setdefault(record["id"], {"name": None, "note": "none", "n": None}).update(
            {k: v for k, v in record.items() if k != "id"})
    assert services.sql(f"SELECT id, name, note, n FROM {name} ORDER BY id") == sorted(
        (k, row["name"], row["note"], row["n"]) for k, row in table.items())


def test_a_timestamp_column_stores_the_same_from_either_format(services):
    """`timestamp` (without time zone) from the C step's binary rows and from the Python
    paths' text rows (SINK_TIMEZONE UTC): wall times as written, instants with offsets
    or Z and epoch milliseconds as their UTC time, at the ends of the years 1 to 9999;
    PostgreSQL stores the same."""
    values = ['"2026-11-22T10:00:00.123456"', '"2026-11-22 10:00"', '"2026-11-22T10:00:00+05:30"',
              '"2026-11-22T23:30:00-01:00"', '"2024-02-29T12:00:00Z"', "1764000000123", "-1", "0",
              '"0001-01-01T00:00:00"', '"0001-01-01T01:30:00+01:00"', '"9999-12-31T23:59:59.999999"',
              '"9999-12-31T22:59:59-01:00"', "-62135596800000", "253402300799999"]
    names = [f"wall_{form}_{uuid.uuid4().hex[:6]}" for form in ("binary", "text")]
    for name in names:
        services.sql(f"CREATE TABLE {name} (id bigint NOT NULL, local timestamp)")
    mapper = RowMapper([ColumnSpec("id", "bigint", nullable=False), ColumnSpec("local", "timestamp")], "append", [])
    documents = [b'{"id": %d, "local": %s}' % (i, v.encode()) for i, v in enumerate(values)]
    binary = [mapper.fast(d) for d in documents]
    assert all(isinstance(row, bytes) for row in binary)
    text = [mapper.fast.fallback(d) or mapper.general(Record("t", 0, i, None, d, None, ())).row
            for i, d in enumerate(documents)]
    batches = [CopyBatch(("id", "local"), binary, format=BINARY), CopyBatch(("id", "local"), text)]
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for name, batch in zip(names, batches, strict=True):
            with conn.cursor() as cur, cur.copy(copy_sql(sa.Table(name, sa.MetaData()), batch.columns,
                                                         batch.format)) as copy:
                copy.write(batch.payload())
        stored = [conn.execute(f"SELECT id, local::text FROM {name} ORDER BY id").fetchall() for name in names]
    assert stored[0] == stored[1] and len(stored[0]) == len(values)
    assert stored[0][2] == (2, "2026-11-22 04:30:00") and stored[0][9] == (9, "0001-01-01 00:30:00")
