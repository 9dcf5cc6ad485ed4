"""SINK_FIELDS_INCLUDE / _EXCLUDE / _RENAME through a real pipeline: which fields fill
which columns, and rules that cannot work stopping start-up with a reason."""

from __future__ import annotations

import orjson
import pytest

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (user_id bigint NOT NULL, note text, secret text, uid bigint)"


def test_renamed_and_excluded_fields(make_pipeline):
    p = make_pipeline(DDL, partitions=1)
    docs = [{"uid": i, "note": f"«{i}»\t\\ \"q\"", "secret": "hunter2", "user_id": -1} for i in range(20)]
    p.produce([(None, orjson.dumps(doc)) for doc in docs])
    replica = p.start(SINK_FIELDS_RENAME="uid:user_id", SINK_FIELDS_EXCLUDE="secret")
    p.wait_for_rows(20, 60, replica)
    assert replica.stop() == 0
    # `uid` fills user_id (the record's own user_id fills nothing), secret is dropped, and
    # the column named uid is no longer filled by the field that was renamed away.
    assert p.rows("user_id, note, secret, uid", "ORDER BY user_id") == [
        (i, f"«{i}»\t\\ \"q\"", None, None) for i in range(20)]


@pytest.mark.parametrize("settings, reason", [
    ({"SINK_FIELDS_RENAME": "uid:userid"}, "SINK_FIELDS_RENAME: table '{table}' has no column 'userid'"),
    ({"SINK_FIELDS_INCLUDE": "note"}, "SINK_FIELDS_*: no field fills column(s) 'user_id' of '{table}'"),
])
def test_rules_that_cannot_work_stop_start_up(make_pipeline, settings, reason):
    p = make_pipeline(DDL, partitions=1)
    replica = p.start(**settings)
    assert replica.wait(60) != 0
    assert reason.format(table=f"public.{p.table}") in replica.output()


def test_flattened_objects_fill_parent_child_columns(make_pipeline):
    p = make_pipeline("CREATE TABLE {table} (id bigint, customer_name text, customer_address_zip text, "
                      "total_amount numeric, total_currency text)", partitions=1)
    docs = [{"id": i, "customer": {"name": f"Zoë \"{i}\"\t", "address": {"zip": f"0{i}"}},
             "total": {"amount": f"{i}.10", "currency": "€"}} for i in range(10)]
    p.produce([(None, orjson.dumps(doc)) for doc in docs])
    replica = p.start(SINK_FLATTEN="true")
    p.wait_for_rows(10, 60, replica)
    assert replica.stop() == 0
    assert [(i, n, z, str(a), c) for i, n, z, a, c in p.rows("*", "ORDER BY id")] == [
        (i, f"Zoë \"{i}\"\t", f"0{i}", f"{i}.10", "€") for i in range(10)]
