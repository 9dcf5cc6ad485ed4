"""I10: checkpoint boundaries are invisible. The same records committed one per
checkpoint and all in one checkpoint leave the same table: partial upserts keep the
fields they do not name, additive sums follow PostgreSQL's arithmetic (exact numerics,
floating point in the database's order, a null increment adds nothing), keys compare as
PostgreSQL compares them, and a refused tombstone leaves the upserts before it in place.
Real PostgreSQL, through the store's own commit transaction; records drawn by hypothesis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.models import PartitionRange, Record, Snapshot
from connector.ops.migrate import upgrade
from connector.routing import TableConfig
from connector.sink.connection import engine_for
from connector.sink.mapping import tolerant
from connector.sink.postgres import PostgresStore

pytestmark = pytest.mark.integration

# Key column types, each with values of which some are one key to PostgreSQL though
# their text differs (and, for timestamps, some differ only past the microsecond).
KEYS: dict[str, list[Any]] = {  # the first two are apart in PostgreSQL (the seeded rows)
    "bigint": [1, 2, 3, 9223372036854775807],
    "text": ["a", "A", "é", "a\tb\\"],
    "char(5)": ["ab", "x", "ab ", "ab  "],
    "numeric(5,1)": ["1.01", 2.25, "1.02", "1", "NaN"],
    "float8": [1, 0.1, 1.0, "1e0", "NaN", "nan"],
    "timestamp(0)": ["2024-05-01T10:00:00.1", "2024-05-01T10:00:01", "2024-05-01T10:00:00.2", "2024-05-01 10:00:00"],
    "timestamptz": ["2024-05-01T10:00:00.1234561Z", "2024-05-01T10:00:00.123457Z", "2024-05-01T10:00:00.1234564Z",
                    "2024-05-01T10:00:00.1234566Z", "2024-05-01T12:00:00.123456+02:00"],
    "text_from_numbers": [12345678901234567890123, "2.10", 12345678901234567890124, "2.1"],
}
TEXT = st.text(alphabet="aé\"\\\t\n'ß😀 ", max_size=6)
FIELDS = {
    "a": st.none() | TEXT,
    "b": st.none() | st.integers(-2 ** 63, 2 ** 63 - 1),
    # additive: exact numeric (32 digits, infinities), floating point, and one with a default
    "n": st.none() | st.sampled_from(["12345678901234567890123456789012.5", "0.1", "0.2", "1", "-1", "Infinity",
                                      "-Infinity", "NaN", "0.000000000000000000000000000000001"]),
    "f": st.none() | st.sampled_from([0.1, 0.2, 0.3, 1e308, -1e308, 1e-300, 3.0]),
    "c": st.none() | st.integers(-3, 3),
}


def documents() -> st.SearchStrategy[dict[str, Any]]:
    """An upsert naming any subset of the fields."""
    return st.fixed_dictionaries({}, optional=FIELDS)


def records(key_values: Sequence[Any]) -> st.SearchStrategy[list[tuple[Any, dict[str, Any] | None]]]:
    """(key, document) pairs; a None document is a tombstone."""
    return st.lists(st.tuples(st.sampled_from(key_values), st.none() | documents() | documents()),
                    min_size=1, max_size=12)


class Target:
    """A table of one key type, seeded with the same rows before each example, with a child
    row referencing the first key (so deleting that key is refused: a dead letter)."""

    def __init__(self, services: Any, key_type: str) -> None:
        self.services, self.key_type, self.name = services, key_type, f"bounds_{uuid.uuid4().hex[:8]}"
        column = "text" if key_type == "text_from_numbers" else key_type
        services.sql(f"CREATE TABLE {self.name} (k {column} PRIMARY KEY, a text, b bigint, n numeric, f float8, "
                     f"c bigint DEFAULT 7)")
        services.sql(f"CREATE TABLE {self.name}_child (k {column} REFERENCES {self.name} (k))")
        self.seeds = KEYS[key_type][:2]
        table = TableConfig((None, self.name), "upsert", additive_columns=("n", "f", "c"))
        self.store = PostgresStore(services.database_url, f"bounds-{self.name}", "test", "eos", routes=table,
                                   tolerate_errors=True)
        self.mapper = tolerant(self.store.prepare())

    def reset(self) -> None:
        self.services.sql(f"TRUNCATE {self.name}_child, {self.name}")
        self.services.sql(f"INSERT INTO {self.name} (k, a, n, f) VALUES (%s, 'seed', 5, 0.5), (%s, 'seed', 5, 0.5)",
                          [str(v) for v in self.seeds])
        self.services.sql(f"INSERT INTO {self.name}_child VALUES (%s)", [str(self.seeds[0])])

    def commit(self, pairs: Sequence[tuple[Any, dict[str, Any] | None]], per_checkpoint: int, ascii: bool) -> None:
        topic = f"t{uuid.uuid4().hex[:8]}"
        batch = [Record(topic, 0, i, json.dumps({"k": key}).encode(),
                        None if doc is None else json.dumps({"k": key, **doc}, ensure_ascii=ascii).encode())
                 for i, (key, doc) in enumerate(pairs)]
        start = None
        for first in range(0, len(batch), per_checkpoint):
            chunk = batch[first:first + per_checkpoint]
            end = chunk[-1].offset + 1
            snapshot = Snapshot(self.store.next_checkpoint_id(), (PartitionRange(topic, 0, start, end, len(chunk)),),
                                chunk, tuple(self.mapper(r) for r in chunk))
            self.store.commit(snapshot, lambda: None)  # made durable before
            start = end

    def rows(self) -> list[tuple[Any, ...]]:
        return self.services.sql(f"SELECT k::text, a, b::text, n::text, f::text, c::text FROM {self.name} ORDER BY k")


@pytest.fixture(scope="module")
def schema(services: Any) -> str:
    engine = engine_for(services.database_url)
    upgrade(engine, "eos")
    engine.dispose()
    return "eos"


@pytest.fixture(scope="module", params=sorted(KEYS))
def targets(request: Any, services: Any, schema: str) -> Iterator[tuple[Target, Target]]:
    pair = (Target(services, request.param), Target(services, request.param))
    yield pair
    for target in pair:
        target.store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_final_table_does_not_depend_on_where_checkpoints_fall(targets, data):
    """One record per checkpoint and one checkpoint for all: the same table."""
    one_by_one, all_at_once = targets
    pairs = data.draw(records(KEYS[one_by_one.key_type]))
    ascii = data.draw(st.booleans())
    for target, size in ((one_by_one, 1), (all_at_once, len(pairs))):
        target.reset()
        target.commit(pairs, size, ascii)
    assert all_at_once.rows() == one_by_one.rows()

