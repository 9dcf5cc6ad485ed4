"""JSON arrays into PostgreSQL arrays through a real pipeline: every element back exactly
as sent (quotes, backslashes, tabs, newlines, `NULL` as a string, non-ASCII, JSON written
with `\\u` escapes and as raw UTF-8), nulls, two dimensions, jsonb elements of any
shape, numbers as written, in append and upsert mode; arrays PostgreSQL refuses (ragged,
an element of the wrong type) as dead letters."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connector.embedded.harness import wait_until
from tests.integration.test_deadletters import stored_deadletters

pytestmark = pytest.mark.integration
DDL = ("CREATE TABLE {table} (id bigint PRIMARY KEY, tags text[], counts bigint[], amounts numeric[], docs jsonb[], "
       "ids uuid[], grid integer[][], hosts inet[], codes varchar(3)[], seen timestamptz[], flags boolean[])")
TEXTS = ['Zoë "q"', "back\\slash", "tab\there", "two\nlines", "NULL", "", "{a,b}", "東京 🙂", None]


def document(i: int) -> dict:
    return {"id": i, "tags": [f"{t}{i}" if t is not None else None for t in TEXTS],
            "counts": [i, -2 ** 63, 2 ** 63 - 1, None], "amounts": [1, None],
            "docs": [{"k": f"é\"{i}\"", "n": [1, None]}, [1, "x"], "plain", None],
            "ids": [str(uuid.UUID(int=i)), None], "grid": [[i, 2], [3, None]], "hosts": ["10.0.0.1", "::1"],
            "codes": ["abc", "é"], "seen": ["2026-12-04T10:00:00.5Z", None], "flags": [True, False, None]}


def encoded(i: int) -> bytes:
    """Odd records with `\\u` escapes, even ones as raw UTF-8; `amounts` as written."""
    text = json.dumps(document(i), ensure_ascii=i % 2 == 1)
    return text.replace('"amounts": [1, null]', f'"amounts": [2.10, 1e-7, 123456789012345678901234.5, null, {i}]').encode()


def expected(i: int) -> tuple:
    doc = document(i)
    return (i, doc["tags"], doc["counts"], [Decimal("2.10"), Decimal("1e-7"), Decimal("123456789012345678901234.5"),
                                           None, Decimal(i)], doc["docs"], [uuid.UUID(int=i), None], doc["grid"],
            ["10.0.0.1/32", "::1/128"], doc["codes"], [datetime(2026, 12, 4, 10, 0, 0, 500000, tzinfo=UTC), None], doc["flags"])


COLUMNS = "id, tags, counts, amounts, docs, ids, grid, hosts::text[], codes, seen, flags"


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_arrays_land_element_for_element(make_pipeline, mode):
    p = make_pipeline(DDL, partitions=2)
    p.produce([(str(i).encode(), encoded(i)) for i in range(40)])
    replica = p.start(SINK_MODE=mode)
    p.wait_for_rows(40, 60, replica)
    assert replica.stop() == 0
    assert p.rows(COLUMNS, "ORDER BY id") == [expected(i) for i in range(40)]


def test_arrays_postgresql_refuses_are_dead_letters(make_pipeline):
    p = make_pipeline(DDL, partitions=1)
    bad = [{"id": 1, "grid": [[1, 2], [3]]}, {"id": 2, "counts": ["many"]}, {"id": 3, "codes": ["toolong"]},
           {"id": 4, "tags": "not an array literal"}, {"id": 5, "counts": {"a": 1}}]
    good = [{"id": 6, "tags": ["fine"]}, {"id": 7, "tags": "{from,a,literal}"}]
    p.produce([(None, json.dumps(doc).encode()) for doc in bad + good])
    replica = p.start(ERRORS_TOLERANCE="all")
    p.wait_for_rows(2, 60, replica)
    wait_until(lambda: len(stored_deadletters(p)) == 5, 30, "five dead letters")
    assert replica.stop() == 0
    assert p.rows("id, tags", "ORDER BY id") == [(6, ["fine"]), (7, ["from", "a", "literal"])]
    letters = {offset: (error_class, error) for _, _, offset, _, _, error_class, error, _ in stored_deadletters(p)}
    assert sorted(letters) == [0, 1, 2, 3, 4]
    assert "expected a JSON array, got dict" in letters[4][1]
    assert all(error for _, error in letters.values())
