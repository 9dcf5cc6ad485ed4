"""Statements are built apart from running them: compiled here without a database."""

import sqlalchemy as sa

from connector.sink import statements as st
from connector.sink.mapping import Op, rejection
from connector.state import PartitionRange

TARGET = sa.Table("Odd \"name\"; drop", sa.MetaData(), sa.Column("id"), sa.Column("v"), sa.Column("select"),
                  schema="my schema")


def sql(statement) -> str:
    return str(statement.compile(dialect=st.DIALECT))


def test_append_groups_by_column_set():
    """Records naming different columns go to different COPYs, so defaults apply."""
    plan = st.plan_append([Op("insert", {"id": 1, "v": 2}), Op("insert", {"id": 2}), Op("insert", {"id": 3, "v": 4})])
    assert [(b.columns, b.rows) for b in plan.batches] == [(("id", "v"), [(1, 2), (3, 4)]), (("id",), [(2,)])]


def test_upsert_reduces_to_last_op_per_key():
    ops = [Op("upsert", {"id": 1, "v": "a"}), Op("upsert", {"id": 2, "v": "b"}), Op("delete", {"id": 1}),
           Op("upsert", {"id": 3, "v": "c"}), Op("upsert", {"id": 2, "v": "B"}), Op("delete", {"id": 3}),
           Op("upsert", {"id": 3, "v": "C"})]
    plan = st.plan_upsert(ops, ["id"])
    assert [b.rows for b in plan.batches] == [[(2, "B"), (3, "C")]]
    assert plan.deletes.rows == [(1,), (3,)]  # 3 is deleted, then inserted fresh
    assert plan.counts() == {"rows": 2, "deleted": 2}


def test_additive_columns_sum_between_tombstones():
    ops = [Op("upsert", {"k": "a", "n": 1, "label": "x"}), Op("upsert", {"k": "a", "n": 2, "label": "y"}),
           Op("upsert", {"k": "b", "n": 5}), Op("delete", {"k": "b"}), Op("upsert", {"k": "b", "n": 7}),
           Op("upsert", {"k": "a", "n": 4})]
    plan = st.plan_upsert(ops, ["k"], additive=["n"])
    assert sorted(row for b in plan.batches for row in b.rows) == [("a", 7, "y"), ("b", 7)]
    assert plan.deletes.rows == [("b",)]


def test_additive_upsert_statement():
    stage = st.stage_table("eos_stage_0", ["id", "v", "select"])
    text = sql(st.upsert_from_stage(TARGET, stage, ["id"], additive=["v"]))
    assert 'SET v = (coalesce("my schema"."Odd ""name""; drop".v, 0) + excluded.v)' in text
    assert '"select" = excluded."select"' in text


def test_identifiers_are_quoted_by_the_library():
    """Hostile table and column names appear only as quoted identifiers."""
    copy = st.copy_sql(TARGET, ["id", "select"])
    assert copy == 'COPY "my schema"."Odd ""name""; drop" (id, "select") FROM STDIN'
    stage = st.stage_table("eos_stage_0", ["id", "select"])
    create = st.create_stage_sql(TARGET, stage)
    assert create.startswith("CREATE TEMPORARY TABLE pg_temp.eos_stage_0 ON COMMIT DROP AS SELECT")
    assert '"my schema"."Odd ""name""; drop"' in create and create.endswith("WITH NO DATA")


def test_upsert_statement():
    stage = st.stage_table("eos_stage_0", ["id", "v"])
    text = sql(st.upsert_from_stage(TARGET, stage, ["id"]))
    assert "ON CONFLICT (id) DO UPDATE SET v = excluded.v" in text
    assert "SELECT pg_temp.eos_stage_0.id, pg_temp.eos_stage_0.v" in text
    keys_only = st.stage_table("eos_stage_1", ["id"])
    assert "ON CONFLICT (id) DO NOTHING" in sql(st.upsert_from_stage(TARGET, keys_only, ["id"]))


def test_delete_statement():
    stage = st.stage_table("eos_stage_deletes", ["id"])
    text = sql(st.delete_from_stage(TARGET, stage))
    assert text.startswith('DELETE FROM "my schema"."Odd ""name""; drop" USING pg_temp.eos_stage_deletes')


def test_lock_is_ordered_and_for_update():
    text = sql(st.lock_offsets("p", [("b", 1), ("a", 0)]))
    assert text.endswith("ORDER BY offsets.topic, offsets.partition FOR UPDATE")


def test_bookkeeping_values_are_bound_not_formatted():
    """A hostile pipeline name travels as a parameter, never in the SQL text."""
    name = "x'); DROP TABLE offsets; --"
    compiled = st.checkpoint_exists(name, 7).compile(dialect=st.DIALECT)
    assert name not in str(compiled) and name in compiled.params.values()
    ranges = [PartitionRange("t", 0, None, 5, 5)]
    insert = st.record_checkpoint(name, 7, "r", ranges, {"rows": 5}).compile(dialect=st.DIALECT)
    assert name not in str(insert)


def test_rows_carry_the_records_they_came_from_and_rejects_write_nothing():
    """Every batch row names its records' indices (for isolating refused rows); a
    `reject` op (a dead letter) is in no batch."""
    ops = [Op("insert", {"id": 1}), rejection("MappingError", "bad"), Op("insert", {"id": 3, "v": 1}),
           Op("insert", {"id": 4})]
    plan = st.plan_append(ops)
    assert [(b.rows, b.sources) for b in plan.batches] == [([(1,), (4,)], [(0,), (3,)]), ([(3, 1)], [(2,)])]
    first, second = plan.batches[0].halves()
    assert (first.rows, first.sources, second.rows, second.sources) == ([(1,)], [(0,)], [(4,)], [(3,)])


def test_upsert_rows_carry_every_record_of_their_key_since_its_last_tombstone():
    ops = [Op("upsert", {"k": "a", "n": 1}), Op("upsert", {"k": "b", "n": 1}), rejection("MappingError", "x"),
           Op("upsert", {"k": "a", "n": 2}), Op("delete", {"k": "b"}), Op("upsert", {"k": "b", "n": 5}),
           Op("delete", {"k": "c"}), Op("delete", {"k": "c"})]
    plan = st.plan_upsert(ops, ["k"], additive=["n"])
    assert [(b.rows, b.sources) for b in plan.batches] == [([("a", 3), ("b", 5)], [(0, 3), (5,)])]
    assert (plan.deletes.rows, plan.deletes.sources) == ([("b",), ("c",)], [(4,), (6, 7)])
