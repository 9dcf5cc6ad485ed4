"""Step 3 of the commit transaction: a checkpoint's rows written, records at fault isolated.

Every batch runs under a SAVEPOINT. When the database refuses a batch for something a
record carries — a data exception (SQLSTATE class 22: a value out of range, too long,
malformed), an integrity violation (class 23: NOT NULL, foreign key, unique, check,
exclusion) or a value too large for an index (54000): `sink/sqlstate.py` decides — or
Python cannot send a row (a lone surrogate COPY cannot encode), the batch is rolled back
to its savepoint and probed in halves, each probe rolled back, down to the single rows
that are refused; every other row is then written at once. A refused row that merges
several records (upsert: one key's records in this checkpoint) is retried one record at a
time in partition order, so each record's effect lands or is refused on its own. Refused
records are returned as `Rejection`s by their index in the snapshot; the store
dead-letters them (or stops, naming the first). Any other failure ends the transaction.

The cost of isolation is paid only by a batch that fails: a good batch costs one
SAVEPOINT and its RELEASE. A stage table is made once per column set and transaction and
emptied before each use, so bisecting a large batch holds a handful of relation locks,
not one per attempt (thousands of stage tables exhausted the lock table).

Insert-ignore stages its rows numbered in the order they came and inserts them in that
order with ON CONFLICT DO NOTHING: a key's first record wins, later ones are skipped and
counted (a probe rolled back counts nothing).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import psycopg
import sqlalchemy as sa

from connector.sink import statements as st
from connector.sink.mapping import REJECT, Op, Payload, as_op
from connector.sink.new_keys import NewKeys
from connector.sink.sqlstate import PYTHON_FAULTS, Rejection, record_fault, session_trouble, sqlstate_of
from connector.sink.table import INSERT_IGNORE, Target

log = logging.getLogger(__name__)
_BATCH, _WHOLE = "eos_batch", "eos_checkpoint"  # savepoint names: one batch's try; a checkpoint's upserts
CARDINALITY_VIOLATION = "21000"  # INSERT … ON CONFLICT DO UPDATE meeting one key twice
WRITE_ERRORS = (sa.exc.DBAPIError, psycopg.Error, *PYTHON_FAULTS)


def _refused(start: int, stop: int, fault: Rejection,
             attempt: Callable[[int, int], Rejection | None]) -> dict[int, Rejection]:
    """The items of [start, stop) — refused together with `fault` — refused on their own,
    found by halves; `attempt(a, b)` tries items [a, b) and rolls them back."""
    if stop - start == 1:
        return {start: fault}
    refused: dict[int, Rejection] = {}
    mid = (start + stop) // 2
    for a, b in ((start, mid), (mid, stop)):
        half_fault = attempt(a, b)
        if half_fault is not None:
            refused.update(_refused(a, b, half_fault, attempt))
    return refused


class BatchWriter:
    """Writes one checkpoint's ops on `conn` inside the open commit transaction; its
    stage tables' names begin with `stages`, unique among the transaction's writers."""

    def __init__(self, conn: sa.Connection, target: Target, new_keys: NewKeys | None = None,
                 stages: str = "eos") -> None:
        self._conn, self._sink, self._target, self._prefix = conn, target, target.table, stages
        self._new_keys = new_keys or NewKeys()
        # Upsert mode always has a key (the table's definition was checked): none is append.
        self._keys = target.key_columns if target.mode == "upsert" else ()
        self._stages: dict[tuple[str, ...], sa.Table] = {}  # one per column set, for the transaction
        self._ops: Sequence[Payload] = ()
        self.rejected: dict[int, Rejection] = {}
        self.skipped = 0  # rows whose key was stored (insert-ignore) or held no older version

    def write(self, ops: Sequence[Payload]) -> dict[str, int]:
        """Write `ops`; counts of rows written, deleted and skipped (insert-ignore: the key
        was stored; SINK_VERSION_COLUMN: the stored version was not older). `self.rejected`
        then holds every record that wrote nothing: rejected by the mapping or by the database."""
        self._ops, kinds = ops, st.payload_types(ops)
        self.rejected = {i: Rejection(*error) for i, error in st.errors(ops, kinds).items()}
        if self._keys:
            plan = self._upserts(cast(Sequence[Op], ops))  # no plain rows in upsert mode
        else:
            plan = st.plan_append(ops, tuple(c.name for c in self._sink.columns), kinds)
            for batch in plan.batches:
                self._isolated("insert", batch)
        counts = {"rows": self._written(plan.batches) - self.skipped,
                  "deleted": self._written((plan.deletes,) if plan.deletes else ())}
        skips = self._sink.mode == INSERT_IGNORE or self._sink.version_column is not None
        return {**counts, "skipped": self.skipped} if skips else counts

    def _upserts(self, ops: Sequence[Op]) -> st.WritePlan:
        """Upsert `ops` with keys as the database compares them. Where it may find equal
        key texts Python tells apart, the keys are grouped by the database first — unless
        every op is an upsert of one shape: then two such keys meet in one INSERT … ON
        CONFLICT, which refuses them with 21000, so the checkpoint is tried as it is and
        grouped only then (grouping costs a COPY of the keys and a sort)."""
        if not self._sink.keys_by_database:
            return self._write_upserts(ops)
        if not st.one_shape_of_upserts(ops):
            return self._write_upserts(self._keyed_by_database(ops))
        rejected, stages = dict(self.rejected), dict(self._stages)
        try:
            with self._savepoint(_WHOLE):
                return self._write_upserts(ops)
        except (sa.exc.DBAPIError, psycopg.Error) as exc:
            if sqlstate_of(exc) != CARDINALITY_VIOLATION:
                raise
        # As before the try: its stage tables were rolled back too (and it skipped nothing:
        # keys the database finds equal meet in the first round, whose statement failed).
        self.rejected, self._stages = rejected, stages
        return self._write_upserts(self._keyed_by_database(ops))

    def _write_upserts(self, ops: Sequence[Op]) -> st.WritePlan:
        plan = st.plan_upsert(ops, self._keys, self._sink.additive_columns, self._sink.summed_by_database,
                              self._sink.version_column is not None)
        if plan.deletes is not None:  # deletes first: later upserts insert fresh rows
            self._isolated("delete", plan.deletes)
        for batch in plan.batches:
            if not (self._new_keys.worth_trying() and self._inserted_as_new(batch)):
                self._isolated("upsert", batch)
        return plan

    def _written(self, batches: Sequence[st.CopyBatch]) -> int:
        """Rows of `batches` that at least one of their records wrote."""
        if not self.rejected:
            return sum(len(b.rows) for b in batches)
        return sum(1 for b in batches for sources in b.sources if not self.rejected.keys() >= set(sources))

    def _isolated(self, kind: str, batch: st.CopyBatch) -> None:
        """Write `batch` under a savepoint; on a record fault, find the rows at fault by
        halves — every probe rolled back, so it leaves no lock behind (a savepoint that is
        kept holds its transaction ID's lock until the commit: thousands would fill the
        server's lock table) — then write the other rows at once."""
        if not batch.rows:
            return
        staged = kind != "insert" or self._sink.mode == INSERT_IGNORE
        stage = self._stage(batch.columns) if staged else None  # made outside: a rollback keeps it
        fault = self._attempt(kind, batch, stage, keep=True)
        if fault is None:
            return
        refused = self._probe(kind, batch, stage, fault)
        rest = batch.without(refused)
        if rest.rows and self._attempt(kind, rest, stage, keep=True) is not None:
            for half in rest.halves():  # refused only together (two rows of one unique key): apart
                self._isolated(kind, half)
        for row, why in sorted(refused.items()):
            self._refuse(kind, batch, row, why)

    @contextlib.contextmanager
    def _savepoint(self, name: str = _BATCH, keep: bool = True) -> Iterator[None]:
        """A savepoint around the block, rolled back if it raises (or unless `keep`) and
        always released: a savepoint rolled back but left established (SQLAlchemy's
        nested transactions do that) nests every later one inside it, and each level's
        locks stay held until the commit — thousands of tries filled the lock table."""
        execute = self._conn.exec_driver_sql
        execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            try:
                execute(f"ROLLBACK TO SAVEPOINT {name}")
                execute(f"RELEASE SAVEPOINT {name}")
            except Exception as exc:  # the connection is gone: the original error matters
                log.debug("rollback to savepoint failed too: %s", exc)
            raise
        if not keep:
            execute(f"ROLLBACK TO SAVEPOINT {name}")
        execute(f"RELEASE SAVEPOINT {name}")

    def _try(self, write: Callable[[], None], keep: bool = True) -> Rejection | None:
        """`write()` under a savepoint (rolled back unless `keep`); the record fault that
        refused it, if one did. Any other failure is raised."""
        skipped = self.skipped
        try:
            with self._savepoint(keep=keep):
                write()
            if not keep:  # rolled back: what it skipped is not skipped
                self.skipped = skipped
            return None
        except WRITE_ERRORS as exc:  # COPY runs on the driver's own cursor
            fault = record_fault(exc)
            if fault is None:
                raise
            return fault

    def _attempt(self, kind: str, batch: st.CopyBatch, stage: sa.Table | None, keep: bool) -> Rejection | None:
        return self._try(lambda: self._apply(kind, batch, stage), keep)

    def _probe(self, kind: str, batch: st.CopyBatch, stage: sa.Table | None, fault: Rejection) -> dict[int, Rejection]:
        """The rows of `batch` (refused as a whole with `fault`) refused on their own, by index."""
        return _refused(0, len(batch.rows), fault,
                        lambda start, stop: self._attempt(kind, batch.part(start, stop), stage, keep=False))

    def _refuse(self, kind: str, batch: st.CopyBatch, row: int, fault: Rejection) -> None:
        """Row `row` was refused: its record is rejected; several records merged into it
        are tried one at a time, in partition order, each as what it is."""
        sources = batch.sources[row]
        if len(sources) == 1:
            self.rejected[sources[0]] = fault
            return
        for index in sources:
            op = as_op(self._ops[index], batch.columns)
            self._isolated(op.kind, st.single(op, index))

    def _keyed_by_database(self, ops: Sequence[Op]) -> Sequence[Op]:
        """`ops` with one key for the key texts PostgreSQL finds equal (a merge meeting
        one key twice fails with 21000, and texts Python tells apart may be one key): the
        database groups the checkpoint's keys, and each key of a group takes its first
        key's text. A key text the database refuses keeps its own: its records are
        refused when written."""
        keys = list(dict.fromkeys(op.key for op in ops if op.kind != REJECT))
        if len(keys) < 2:
            return ops
        stage = self._stages.get(())
        if stage is None:
            stage = self._stages[()] = st.stage_table(f"{self._prefix}_keys", (*self._keys, st.KEY_ORDINAL))
            self._conn.exec_driver_sql(st.create_key_stage_sql(self._target, stage))
        rows = ["\t".join(key) + f"\t{i}\n" for i, key in enumerate(keys)]
        collisions = self._collisions(stage, rows)
        if collisions is None:  # some key text refused: group the others
            collisions = self._collisions(stage, self._accepted(stage, rows)) or {}
        if not collisions:
            return ops
        same = {keys[i]: keys[first] for i, first in collisions.items()}
        return [op._replace(key=same[op.key]) if op.key in same else op for op in ops]

    def _collisions(self, stage: sa.Table, rows: list[str]) -> dict[int, int] | None:
        """Ordinal -> its group's first ordinal, for the staged keys equal to another;
        None when the database refuses a key."""
        found: dict[int, int] = {}

        def query() -> None:
            self._fill(stage, rows)
            found.update((int(i), int(first)) for i, first in self._conn.execute(st.key_collisions(stage, self._keys)))
        return None if self._try(query) is not None else found

    def _accepted(self, stage: sa.Table, rows: list[str]) -> list[str]:
        """The key rows the database accepts (some refused), found by halves."""
        refused = _refused(0, len(rows), Rejection("", ""),  # only which rows: their reasons are the writes'
                           lambda start, stop: self._try(lambda: self._fill(stage, rows[start:stop]), keep=False))
        return [row for i, row in enumerate(rows) if i not in refused]

    def _fill(self, stage: sa.Table, rows: list[Any], format: st.Format = st.TEXT) -> None:
        self._conn.exec_driver_sql(st.empty_stage_sql(stage))
        self._copy(stage, st.CopyBatch(tuple(c.name for c in stage.columns), rows, format=format))

    def _inserted_as_new(self, batch: st.CopyBatch) -> bool:
        """Upsert `batch` by COPY into the table, as inserts (True), when none of its
        keys is stored; else roll it back to its savepoint and return False. The same
        rows: a batch holds one row per key (upsert_from_stage inserts what COPY does
        where no row conflicts, additive columns included)."""
        try:
            with self._savepoint():
                self._copy(self._target, batch)
        except WRITE_ERRORS as exc:
            if not isinstance(exc, PYTHON_FAULTS) and session_trouble(exc):  # retried as it is
                raise
            # A stored key or a refused row: merged as usual. Anything else (COPY refused
            # on this table, e.g. under row-level security) will not change soon.
            self._new_keys.result(False, lasting=record_fault(exc) is None)
            return False
        self._new_keys.result(True)
        return True

    def _apply(self, kind: str, batch: st.CopyBatch, stage: sa.Table | None) -> None:
        if stage is None:
            self._copy(self._target, batch)
            return
        self._fill(stage, batch.rows, batch.format)
        if kind == "delete":
            self._conn.execute(st.delete_from_stage(self._target, stage))
        elif kind == "insert":  # insert-ignore: a row whose key is stored (or met before in the batch) is skipped
            inserted = self._conn.exec_driver_sql(st.insert_new_from_stage_sql(self._target, stage, self._sink.key_columns))
            self.skipped += len(batch.rows) - inserted.rowcount
        else:
            merge = st.upsert_from_stage(self._target, stage, self._keys, self._sink.additive_columns,
                                         self._sink.version_column)
            if self._sink.version_column is None:
                self._conn.execute(merge)
            else:  # the driver's row count: the rows a greater version replaced or inserted
                applied = self._conn.exec_driver_sql(str(merge.compile(dialect=st.DIALECT)))
                self.skipped += len(batch.rows) - applied.rowcount

    def _stage(self, columns: tuple[str, ...]) -> sa.Table:
        stage = self._stages.get(columns)
        if stage is None:
            stage = self._stages[columns] = st.stage_table(f"{self._prefix}_stage_{len(self._stages)}", columns)
            self._conn.exec_driver_sql(st.create_stage_sql(self._target, stage))
            if self._sink.mode == INSERT_IGNORE:
                self._conn.exec_driver_sql(st.order_stage_sql(stage))
        return stage

    def _copy(self, table: sa.Table, batch: st.CopyBatch) -> None:
        driver: Any = self._conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        with driver.cursor() as cursor, cursor.copy(st.copy_sql(table, batch.columns, batch.format)) as copy:
            copy.write(batch.payload())
