"""Statements are built apart from running them: compiled here without a database."""

import sqlalchemy as sa

from connector.bookkeeping import statements as bks
from connector.models import PartitionRange
from connector.sink import statements as st
from connector.sink.copytext import parse_row, render_row
from connector.sink.mapping import Op, rejection

TARGET = sa.Table("Odd \"name\"; drop", sa.MetaData(), sa.Column("id"), sa.Column("v"), sa.Column("select"),
                  schema="my schema")


def sql(statement) -> str:
    return str(statement.compile(dialect=st.DIALECT))


def op(kind, values, key=("id",)):
    """An op as the mapper makes it: a COPY text row, and the key for upserts."""
    return Op(kind, tuple(values), render_row([None if v is None else str(v) for v in values.values()]),
              tuple(str(values[k]) for k in key) if kind != "insert" else ())


def Ins(values):
    return op("insert", values)


def Ups(values, key=("id",)):
    return op("upsert", values, key)


def Del(values, key=("id",)):
    return op("delete", values, key)


def rows(batch):
    """A batch's rows as tuples of text, for comparing."""
    return [tuple(parse_row(row)) for row in batch.rows]


def test_append_groups_by_column_set():
    """Records naming different columns go to different COPYs, so defaults apply."""
    ops = [Ins({"id": 1, "v": 2}), Ins({"id": 2}), Ins({"id": 3, "v": 4})]
    plan = st.plan_append(ops, ("id", "v"), st.payload_types(ops))
    assert [(b.columns, rows(b)) for b in plan.batches] == [(("id", "v"), [("1", "2"), ("3", "4")]), (("id",), [("2",)])]


def test_upsert_reduces_to_last_op_per_key():
    ops = [Ups({"id": 1, "v": "a"}), Ups({"id": 2, "v": "b"}), Del({"id": 1}),
           Ups({"id": 3, "v": "c"}), Ups({"id": 2, "v": "B"}), Del({"id": 3}),
           Ups({"id": 3, "v": "C"})]
    plan = st.plan_upsert(ops, ["id"])
    assert [rows(b) for b in plan.batches] == [[("2", "B"), ("3", "C")]]
    assert rows(plan.deletes) == [("1",), ("3",)]  # 3 is deleted, then inserted fresh
    assert plan.counts() == {"rows": 2, "deleted": 2}


def test_additive_columns_sum_between_tombstones():
    k = ("k",)
    ops = [Ups({"k": "a", "n": 1, "label": "x"}, k), Ups({"k": "a", "n": "2.5", "label": "y"}, k),
           Ups({"k": "b", "n": 5}, k), Del({"k": "b"}, k), Ups({"k": "b", "n": 7}, k), Ups({"k": "a", "n": 4}, k)]
    plan = st.plan_upsert(ops, ["k"], additive=["n"])
    assert sorted(row for b in plan.batches for row in rows(b)) == [("a", "7.5", "y"), ("b", "7")]
    assert rows(plan.deletes) == [("b",)]


def test_additive_upsert_statement():
    stage = st.stage_table("eos_stage_0", ["id", "v", "select"])
    text = sql(st.upsert_from_stage(TARGET, stage, ["id"], additive=["v"]))
    assert 'SET v = (coalesce("my schema"."Odd ""name""; drop".v, 0) + coalesce(excluded.v, 0))' in text
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
    assert text.endswith("FROM pg_temp.eos_stage_0 ORDER BY pg_temp.eos_stage_0.id ON CONFLICT (id) DO UPDATE SET v = excluded.v")
    keys_only = st.stage_table("eos_stage_1", ["id"])
    assert "ON CONFLICT (id) DO NOTHING" in sql(st.upsert_from_stage(TARGET, keys_only, ["id"]))


def test_delete_statement():
    stage = st.stage_table("eos_stage_deletes", ["id"])
    text = sql(st.delete_from_stage(TARGET, stage))
    assert text.startswith('DELETE FROM "my schema"."Odd ""name""; drop" USING pg_temp.eos_stage_deletes')


def test_lock_is_ordered_and_for_update():
    text = sql(bks.lock_offsets("p"))
    assert text.endswith("ORDER BY offsets.topic, offsets.partition FOR UPDATE")


def test_bookkeeping_values_are_bound_not_formatted():
    """A hostile pipeline name travels as a parameter, never in the SQL text."""
    name = "x'); DROP TABLE offsets; --"
    compiled = sa.select(bks.checkpoint_committed(name)).compile(dialect=st.DIALECT)
    assert name not in str(compiled) and name in compiled.params.values()
    insert = bks.advance_and_record(name).compile(dialect=st.DIALECT)
    assert name not in str(insert) and name in insert.params.values()
    params = bks.advance_params(7, name, [PartitionRange(name, 0, None, 5, 5)], {"rows": 5})
    assert (params["topics"], params["replica"], params["offsets"][0]["topic"]) == ([name], name, name)


def test_rows_carry_the_records_they_came_from_and_rejects_write_nothing():
    """Every batch row names its records' indices (for isolating refused rows); a
    `reject` op (a dead letter) is in no batch."""
    ops = [Ins({"id": 1}), rejection("MappingError", "bad"), Ins({"id": 3, "v": 1}), Ins({"id": 4})]
    plan = st.plan_append(ops, ("id", "v"), st.payload_types(ops))
    assert [(rows(b), b.sources) for b in plan.batches] == [([("1",), ("4",)], [(0,), (3,)]), ([("3", "1")], [(2,)])]
    first, second = plan.batches[0].halves()
    assert (rows(first), first.sources, rows(second), second.sources) == ([("1",)], [(0,)], [("4",)], [(3,)])


def test_plain_rows_are_one_batch_of_every_column_mixed_ones_are_grouped():
    """A str op is a row of every column: a checkpoint of only those is one batch whose
    row i is record i; mixed with Ops, each goes to the batch of its column set."""
    ops = ["1\t2\n", "3\t4\n", "5\t6\n"]
    plan = st.plan_append(ops, ("id", "v"), st.payload_types(ops))
    (batch,) = plan.batches
    assert (batch.columns, rows(batch), list(batch.sources)) == (("id", "v"), [("1", "2"), ("3", "4"), ("5", "6")],
                                                                 [(0,), (1,), (2,)])
    first, second = batch.halves()
    assert (list(first.sources), list(second.sources)) == ([(0,)], [(1,), (2,)])
    ops = ["1\t2\n", Ins({"id": 2}), rejection("MappingError", "bad"), "3\t4\n"]
    plan = st.plan_append(ops, ("id", "v"), st.payload_types(ops))
    assert [(b.columns, rows(b), list(b.sources)) for b in plan.batches] == [
        (("id", "v"), [("1", "2"), ("3", "4")], [(0,), (3,)]), (("id",), [("2",)], [(1,)])]


def test_ops_of_one_column_set_are_one_batch_as_they_are():
    """Records that all leave out the same columns (the C step gives them one names
    tuple) are one batch whose row i is record i, in their format; a rejected record
    among them, or a second column set, sends them through the grouping."""
    names = ("id", "v")
    ops = [Op("insert", names, b"row%d" % i) for i in range(3)]
    (batch,) = st.plan_append(ops, ("id", "v", "at"), st.payload_types(ops)).batches
    assert (batch.columns, batch.rows, list(batch.sources), batch.format) == (names, [b"row0", b"row1", b"row2"],
                                                                              [(0,), (1,), (2,)], st.BINARY)
    ops.insert(1, rejection("MappingError", "bad"))
    (batch,) = st.plan_append(ops, ("id", "v", "at"), st.payload_types(ops)).batches
    assert (batch.rows, list(batch.sources)) == ([b"row0", b"row1", b"row2"], [(0,), (2,), (3,)])
    ops.append(Op("insert", ("id",), b"row9"))
    assert [(b.columns, b.rows) for b in st.plan_append(ops, ("id", "v", "at"), st.payload_types(ops)).batches] == [
        (names, [b"row0", b"row1", b"row2"]), (("id",), [b"row9"])]


def test_upsert_rows_carry_every_record_of_their_key_since_its_last_tombstone():
    k = ("k",)
    ops = [Ups({"k": "a", "n": 1}, k), Ups({"k": "b", "n": 1}, k), rejection("MappingError", "x"),
           Ups({"k": "a", "n": 2}, k), Del({"k": "b"}, k), Ups({"k": "b", "n": 5}, k), Del({"k": "c"}, k), Del({"k": "c"}, k)]
    plan = st.plan_upsert(ops, ["k"], additive=["n"])
    assert [(rows(b), b.sources) for b in plan.batches] == [([("a", "3"), ("b", "5")], [(0, 3), (5,)])]
    # a delete carries the upserts it cancelled: replayed in turn if the database refuses it
    assert (rows(plan.deletes), plan.deletes.sources) == ([("b",), ("c",)], [(1, 4), (6, 7)])


def test_a_partial_upsert_keeps_the_fields_it_does_not_name_within_a_checkpoint():
    """I10: {"k":1,"a":"x","b":1} then {"k":1,"b":2} is (1,'x',2) in one checkpoint as in two."""
    k = ("k",)
    plan = st.plan_upsert([Ups({"k": 1, "a": "x", "b": 1}, k), Ups({"k": 1, "b": 2}, k)], ["k"])
    assert [(b.columns, rows(b), b.sources) for b in plan.batches] == [(("k", "a", "b"), [("1", "x", "2")], [(0, 1)])]


def test_additive_sums_are_exact_and_a_null_increment_adds_nothing():
    k = ("k",)
    digits = "12345678901234567890123456789012.5"
    ops = [Ups({"k": 1, "n": digits}, k), Ups({"k": 1, "n": "1"}, k), Ups({"k": 2, "n": "5"}, k),
           op("upsert", {"k": 2, "n": None}, k), Ups({"k": 2, "n": "3"}, k),
           Ups({"k": 3, "n": "Infinity"}, k), Ups({"k": 3, "n": "-Infinity"}, k)]
    plan = st.plan_upsert(ops, ["k"], additive=["n"])
    assert [row for b in plan.batches for row in rows(b)] == [
        ("1", "12345678901234567890123456789013.5"), ("2", "8"), ("3", "NaN")]


def test_increments_only_the_database_can_sum_exactly_apply_in_turn():
    """A floating-point additive column (not associative), or one the earlier upsert did not
    name (the row's default is its base), opens the key's next round instead of folding."""
    k = ("k",)
    ops = [Ups({"k": 1, "f": "0.1"}, k), Ups({"k": 1, "f": "0.2"}, k), Ups({"k": 2, "a": "x"}, k),
           Ups({"k": 2, "a": "y", "c": "1"}, k), Ups({"k": 2, "c": "2"}, k)]
    plan = st.plan_upsert(ops, ["k"], additive=["f", "c"], summed_by_database=frozenset({"f"}))
    assert [(rows(b), b.sources) for b in plan.batches] == [
        ([("1", "0.1")], [(0,)]), ([("2", "x")], [(2,)]), ([("1", "0.2")], [(1,)]), ([("2", "y", "3")], [(3, 4)])]


def test_binary_rows_of_one_key_fold_only_into_a_row_they_replace():
    """A binary row (the C step's) is read by PostgreSQL alone: a key's later record folds
    into it only when it names every column (it then replaces it); a partial upsert after
    it, or an increment, opens the key's next round for the database to apply in turn."""
    whole, names = ("id", "v", "select"), ("id", "v")
    first, later = Op("upsert", whole, b"\x00\x03first", ("1",)), Op("upsert", whole, b"\x00\x03later", ("1",))
    partial = Ups({"id": 1, "v": 5})
    plan = st.plan_upsert([first, later, Ups({"id": 2, "v": 1, "select": "x"})], ["id"])
    assert [(b.format, b.rows, list(b.sources)) for b in plan.batches] == [
        ("binary", [b"\x00\x03later"], [(0, 1)]), ("text", ["2\t1\tx\n"], [(2,)])]
    plan = st.plan_upsert([first, partial], ["id"])
    assert [(b.format, b.columns, list(b.sources)) for b in plan.batches] == [("binary", whole, [(0,)]),
                                                                             ("text", names, [(1,)])]
    plan = st.plan_upsert([first, later], ["id"], additive=["v"])
    assert [list(b.sources) for b in plan.batches] == [[(0,)], [(1,)]]


def test_one_shape_of_upserts_is_one_column_set_in_one_format():
    """Two keys the database finds equal meet in one statement (and fail it with 21000)
    only when their rows are in one batch: one column set and one COPY format."""
    text, other = Ups({"id": 1, "v": 2}), Ups({"id": 2, "v": 3})
    binary = Op("upsert", text.columns, b"\x00\x02binary", ("3",))
    assert st.one_shape_of_upserts([text, other, rejection("MappingError", "bad")])
    assert not st.one_shape_of_upserts([text, binary])
    assert not st.one_shape_of_upserts([text, Ups({"id": 4})])
