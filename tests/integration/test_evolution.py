"""Tables created and evolved through a real pipeline (SINK_AUTO_CREATE, SINK_AUTO_EVOLVE):
the column types inferred from records, a field that appears mid-stream, a null field
that gains a value, key columns from the record key, values that conflict with a
column's type and names that cannot be columns as dead letters; without
SINK_AUTO_EVOLVE, a field no column takes logged once and counted. The kill test of
created and evolving tables is tests/integration/test_routing.py's."""

from __future__ import annotations

import json
import re

import orjson
import pytest

from connector.embedded.harness import free_port, wait_until
from tests.integration.test_deadletters import stored_deadletters
from tests.integration.test_observability import get, metric

pytestmark = pytest.mark.integration
NO_TABLE = "SELECT 1"  # make_pipeline's DDL: the connector creates {table}
TEXT = "Zoë \"q\"\t\\ \u00e9\n«»"


def wait_for_rows(p, n: int, replica) -> None:
    """`n` rows in the table the connector makes (none while it does not exist)."""
    def count() -> int:
        replica.check_alive()
        return p.count() if p.services.sql("SELECT to_regclass(%s) IS NOT NULL", (p.table,))[0][0] else 0
    wait_until(lambda: count() >= n, 60, f"{n} rows in {p.table}")


def column_types(p) -> dict[str, tuple[str, str]]:
    return {name: (data_type, nullable) for name, data_type, nullable in p.services.sql(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = %s",
        (p.table,))}


def test_a_table_made_from_its_first_record_and_evolved_mid_stream(make_pipeline):
    p = make_pipeline(NO_TABLE, partitions=2)
    # The first record as a producer may write it: `\u` escapes, a number with a trailing
    # zero and one beyond 64 bits (both kept as written by numeric columns).
    first = json.dumps({"id": 0, "name": TEXT, "ok": True, "price": 0, "big": 12345678901234567890123,
                        "tags": ["a", "é"], "doc": {"k": "é"}, "later_valued": None}).replace('"price": 0', '"price": 2.10')
    docs = [{"id": i, "name": f"{TEXT} {i}", "ok": i % 2 == 0, "price": i + 0.5, "big": i, "tags": [],
             "doc": {}, "later_valued": None if i < 30 else i, **({"note": f"n°{i}", "Ratio 100%": i} if i >= 20 else {})}
            for i in range(1, 60)]  # raw UTF-8 and `\u` escapes in turn
    p.produce([(None, first.encode())] + [(None, orjson.dumps(doc) if i % 2 else json.dumps(doc).encode())
                                          for i, doc in enumerate(docs, 1)], partition_of=lambda i: 0)
    replica = p.start(SINK_AUTO_CREATE="true", SINK_AUTO_EVOLVE="true", CHECKPOINT_MAX_RECORDS="7")
    wait_for_rows(p, 60, replica)
    assert replica.stop() == 0
    assert column_types(p) == {
        "id": ("bigint", "YES"), "name": ("text", "YES"), "ok": ("boolean", "YES"), "price": ("numeric", "YES"),
        "big": ("numeric", "YES"), "tags": ("jsonb", "YES"), "doc": ("jsonb", "YES"), "note": ("text", "YES"),
        "later_valued": ("bigint", "YES"), "Ratio 100%": ("bigint", "YES")}
    rows = p.rows('id, name, ok, price::text, big::text, tags, doc, note, later_valued, "Ratio 100%%"', "ORDER BY id")
    assert rows[0] == (0, TEXT, True, "2.10", "12345678901234567890123", ["a", "é"], {"k": "é"}, None, None, None)
    assert rows[1:] == [(i, f"{TEXT} {i}", i % 2 == 0, f"{i}.5", str(i), [], {}, f"n°{i}" if i >= 20 else None,
                         i if i >= 30 else None, i if i >= 20 else None) for i in range(1, 60)]
    out = replica.output()
    assert f"table '{p.table}' gets columns id bigint, name text" in out
    assert f"gets column(s) Ratio 100% bigint, note text for fields first met in {p.topic}[0]@20" in out
    assert f'ALTER TABLE public.{p.table} ADD COLUMN IF NOT EXISTS "Ratio 100%" bigint' in out


def test_values_a_made_column_cannot_take_and_names_no_column_can_have_are_dead_letters(make_pipeline):
    p = make_pipeline(NO_TABLE, partitions=1)
    long_name = "ß" * 40  # 80 bytes: PostgreSQL would cut it to 63
    docs = [{"id": 1, "n": 5}, {"id": 2, "n": "five"}, {"id": 3, long_name: "x"}, {"id": 4, "n": 7}]
    p.produce([(None, orjson.dumps(doc)) for doc in docs])
    replica = p.start(SINK_AUTO_CREATE="true", SINK_AUTO_EVOLVE="true", ERRORS_TOLERANCE="all")
    wait_for_rows(p, 2, replica)
    wait_until(lambda: len(stored_deadletters(p)) == 2, 30, "two dead letters")
    assert replica.stop() == 0
    assert p.rows("id, n", "ORDER BY id") == [(1, 5), (4, 7)]
    letters = {offset: error for _, _, offset, _, _, _, error, _ in stored_deadletters(p)}
    assert set(letters) == {1, 2}
    assert "field 'n'" in letters[1]
    assert f"field '{long_name}' cannot become a column: a name of 80 bytes (PostgreSQL keeps 63)" in letters[2]


def test_a_made_upsert_table_takes_its_key_from_the_record_key_and_deletes(make_pipeline):
    p = make_pipeline(NO_TABLE, partitions=1)
    messages = [(orjson.dumps({"id": i % 5}), orjson.dumps({"name": f"{TEXT} {i}"})) for i in range(20)]
    messages.append((orjson.dumps({"id": 3}), None))  # a tombstone
    p.produce(messages)
    replica = p.start(SINK_AUTO_CREATE="true", SINK_MODE="upsert", SINK_KEY_COLUMNS="id")
    wait_for_rows(p, 4, replica)
    wait_until(lambda: p.count() == 4, 30, "the tombstone applied")
    assert replica.stop() == 0
    assert p.rows("id, name", "ORDER BY id") == [(0, f"{TEXT} 15"), (1, f"{TEXT} 16"), (2, f"{TEXT} 17"),
                                                 (4, f"{TEXT} 19")]
    assert column_types(p)["id"] == ("bigint", "NO")
    assert p.services.sql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                          "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                          (p.table,)) == [("id",)]


def test_an_upsert_table_to_make_needs_its_key_columns(make_pipeline):
    p = make_pipeline(NO_TABLE, partitions=1)
    replica = p.start(SINK_AUTO_CREATE="true", SINK_MODE="upsert")
    assert replica.wait(60) == 1
    assert f"table '{p.table}' does not exist: SINK_AUTO_CREATE in upsert mode needs SINK_KEY_COLUMNS" in \
        replica.output()


def test_a_field_no_column_takes_is_logged_once_and_counted(make_pipeline):
    p = make_pipeline("CREATE TABLE {table} (id bigint, name text)", partitions=1)
    docs = [{"id": i, "name": TEXT, **({"extra": {"deep": [i]}, "secret": "s"} if i >= 10 else {})}
            for i in range(30)]
    p.produce([(None, orjson.dumps(doc)) for doc in docs])
    port = free_port()
    replica = p.start(SINK_FIELDS_EXCLUDE="secret", HTTP_PORT=str(port), HTTP_HOST="127.0.0.1")
    p.wait_for_rows(30, 60, replica)
    wait_until(lambda: metric(get(port, "/metrics")[1], "eos_unknown_fields_total", table=f"public.{p.table}",
                              field="extra") == 20, 30, "20 unknown values of `extra` counted")
    text = get(port, "/metrics")[1]
    assert replica.stop() == 0
    assert re.findall(r"^eos_unknown_fields_total\{(.*)\} ", text, re.M) == [  # `secret` is excluded: meant
        f'field="extra",table="public.{p.table}"']
    assert p.rows("id, name", "ORDER BY id") == [(i, TEXT) for i in range(30)]
    out = replica.output()
    assert out.count("has no column for field") == 1
    assert f"table 'public.{p.table}' has no column for field 'extra' (first met in {p.topic}[0]@10)" in out


def test_two_replicas_make_and_evolve_one_table_at_once(make_pipeline):
    """Each replica makes the table from its own partitions' first record and adds the
    columns its records bring: the advisory lock and IF NOT EXISTS let both commit, and
    every record lands once with every field."""
    p = make_pipeline(NO_TABLE, partitions=4)
    docs = [{"id": i, "name": f"{TEXT} {i}", **({f"from_{i % 4}": i} if i >= 40 else {}),
             **({"shared": f"s{i}"} if i >= 60 else {})} for i in range(200)]
    settings = {"SINK_AUTO_CREATE": "true", "SINK_AUTO_EVOLVE": "true", "CHECKPOINT_MAX_RECORDS": "9"}
    replicas = [p.start(**settings), p.start(host="b", **settings)]
    wait_until(lambda: all(r.check_alive() or "assigned topic" in r.output() for r in replicas), 60, "both assigned")
    p.produce([(None, orjson.dumps(doc)) for doc in docs], partition_of=lambda i: i % 4)  # neither has made it
    wait_for_rows(p, 200, replicas[0])
    assert all(replica.stop() == 0 for replica in replicas)
    assert all("does not exist: its first record will give its columns" in r.output() for r in replicas)
    columns = ", ".join(["id", "name", "shared", *(f"from_{k}" for k in range(4))])
    assert p.rows(columns, "ORDER BY id") == [
        (i, f"{TEXT} {i}", f"s{i}" if i >= 60 else None, *(i if i >= 40 and i % 4 == k else None for k in range(4)))
        for i in range(200)]
