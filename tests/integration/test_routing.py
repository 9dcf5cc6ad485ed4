"""One pipeline, many topics, many tables: `${topic}` routing, SINK_TABLE_MAP and the
per-table settings, with every table's rows committed in one transaction per checkpoint.
Some tables do not exist (SINK_AUTO_CREATE makes them) and some records carry a field
their table has no column for (SINK_AUTO_EVOLVE adds it). Replicas are SIGKILLed at every
protocol step; at each crash point every table holds exactly the records below the
offsets the database committed (no table has a checkpoint another lacks, or a column a
committed record did not bring), and after a restart every record is in its table
exactly once, the new column filled from the record that first held its field."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.embedded.harness import produce, wait_until
from connector.embedded.services import Services
from connector.routing import env_name, safe_identifier
from tests.services import Pipeline

pytestmark = pytest.mark.chaos
STEPS = ["before_snapshot", "mid_snapshot_write", "after_snapshot_durable", "after_offsets_locked",
         "after_rows_written", "after_db_commit", "after_kafka_commit", "after_discard"]
BACKENDS = ["memory", "filesystem", "postgres"]
TOPICS = 20
PER_TOPIC = 60
HALF = PER_TOPIC // 2
ROWS = (TOPICS - TOPICS // 5) * PER_TOPIC + TOPICS // 5 * HALF  # an upsert table (every fifth) keeps HALF keys
NOTE_FROM = 20  # records j >= NOTE_FROM of an evolving topic carry a field `note` no column takes at first
COLUMNS = "event_id bigint NOT NULL, body text, kafka_topic text, kafka_partition int, kafka_offset bigint"


class Routed:
    """TOPICS topics with hostile names (dots, dashes, capitals, a leading digit): most
    routed by `${topic}` into their own table of a fresh schema, every fifth an upsert
    table by its per-table settings, the last sent by SINK_TABLE_MAP to another schema."""

    def __init__(self, services: Services, workdir: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.services, self.schema, self.other = services, f"routed_{suffix}", f"mapped_{suffix}"
        self.topics = [f"{('Orders.EU', 'refunds-v2', '9lives.x-y', 'audit')[i % 4]}-{i}.{suffix}"
                       for i in range(TOPICS)]
        self.pipeline = Pipeline(services, workdir, f"routed-{suffix}", "unused", "unused", 2)
        services.sql(f"CREATE SCHEMA {self.schema}; CREATE SCHEMA {self.other}")
        self.env: dict[str, str] = {
            "KAFKA_TOPICS": ",".join(self.topics), "SINK_TABLE": f"{self.schema}.${{topic}}",
            "SINK_TABLE_MAP": f"{self.topics[-1]}={self.other}.last_topic",
            "SINK_METADATA_COLUMNS": "topic=kafka_topic,partition=kafka_partition,offset=kafka_offset",
            "SINK_AUTO_CREATE": "true", "SINK_AUTO_EVOLVE": "true"}
        for i, topic in enumerate(self.topics):
            services.create_topic(topic, 2)
            key = " PRIMARY KEY" if self.upsert(i) else ""
            if not self.created(i):
                services.sql(f'CREATE TABLE {self.table(topic)} (event_id bigint NOT NULL{key}, '
                             f'{COLUMNS.split(", ", 1)[1]})')
            if self.upsert(i):
                name = env_name((self.schema, safe_identifier(topic).lower()))
                self.env.update({f"SINK_TABLE_{name}_MODE": "upsert", f"SINK_TABLE_{name}_KEY_COLUMNS": "event_id"})

    @staticmethod
    def upsert(i: int) -> bool:
        return i % 5 == 0

    @staticmethod
    def created(i: int) -> bool:
        """The connector creates the table (append), from the topic's first record."""
        return i % 5 == 2

    @staticmethod
    def evolving(i: int) -> bool:
        """Records from NOTE_FROM on carry `note` (in a created table and an existing one)."""
        return i % 5 in (2, 3)

    def table(self, topic: str) -> str:
        """The table's name in SQL (quoted: a name may start with a digit)."""
        if topic == self.topics[-1]:
            return f'"{self.other}".last_topic'
        return f'"{self.schema}"."{safe_identifier(topic).lower()}"'

    def record(self, t: int, j: int) -> tuple[int, str, str | None]:
        """The `j`th record of topic `t`: its event ID (in an upsert table, records j and
        j + HALF share one: the later one wins), body and note (None: no such field)."""
        note = f"note «{j}»\t\\ ü" if self.evolving(t) and j >= NOTE_FROM else None
        return t * 1000 + (j % HALF if self.upsert(t) else j), f"«{self.topics[t]}» n°{j}\t\"q\" \\ é", note

    def produce(self) -> None:
        for t, topic in enumerate(self.topics):
            events = []
            for j in range(PER_TOPIC):
                event_id, body, note = self.record(t, j)
                value = {"event_id": event_id, "body": body, **({"note": note} if note is not None else {})}
                events.append((str(j).encode(), orjson.dumps(value)))
            produce(self.services.bootstrap_servers, topic, events, lambda j: j % 2)  # record j: offset j // 2

    def expected(self, t: int, committed: dict[tuple[str, int], int]) -> list[tuple[Any, ...]]:
        """Topic `t`'s table once the records below `committed` are written."""
        rows: dict[int, tuple[Any, ...]] = {}
        for j in range(PER_TOPIC):
            if j // 2 < committed.get((self.topics[t], j % 2), 0):
                event_id, body, note = self.record(t, j)
                rows[event_id] = (j % 2, j // 2, event_id, body, note)
        return sorted(rows.values())

    def start(self, **settings: str) -> Any:
        return self.pipeline.start(**self.env, **settings)

    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self.services.sql("SELECT topic, partition, next_offset FROM eos_connector.offsets WHERE pipeline = %s",
                                 (self.pipeline.name,))
        return {(topic, partition): next_offset for topic, partition, next_offset in rows if next_offset is not None}

    def rows(self, topic: str) -> list[tuple[Any, ...]]:
        """The table's rows (none while it does not exist), `note` None while it has no such column."""
        table = self.table(topic)
        columns = {c for (c,) in self.services.sql("SELECT attname FROM pg_attribute WHERE attrelid = "
                                                   "to_regclass(%s) AND attnum > 0", (table,))}
        if not columns:
            return []
        note = "note" if "note" in columns else "NULL"
        return self.services.sql(f"SELECT kafka_partition, kafka_offset, event_id, body, {note} FROM {table} "
                                 "ORDER BY kafka_partition, kafka_offset")

    def assert_matches_offsets(self, committed: dict[tuple[str, int], int] | None = None) -> int:
        """Every table holds exactly what the records below `committed` (default: the
        offsets the database committed) make: a checkpoint is in every table it touches
        or in none. Returns the rows."""
        committed, total = committed or self.offsets(), 0
        for t, topic in enumerate(self.topics):
            found = self.rows(topic)
            assert found == self.expected(t, committed), f"{self.table(topic)} disagrees with the offsets of {topic}"
            total += len(found)
        return total

    def count(self) -> int:
        return sum(len(self.rows(topic)) for topic in self.topics)


@pytest.fixture
def routed(services: Services, tmp_path: Path) -> Iterator[Routed]:
    found = Routed(services, tmp_path)
    yield found
    found.pipeline.stop_all()


@pytest.mark.parametrize("step", STEPS)
def test_many_topics_into_many_tables_atomically_under_kills(routed, step):
    """Killed at `step` of the 3rd checkpoint: at that moment the tables agree with the
    committed offsets (all of a checkpoint or none of it, in every table); restarted,
    every record is in its table exactly once."""
    backend = BACKENDS[STEPS.index(step) % len(BACKENDS)] if step != "mid_snapshot_write" else "filesystem"
    routed.produce()
    settings = {"STATE_BACKEND": backend, "CHECKPOINT_MAX_RECORDS": "250"}
    crashed = routed.start(CONNECTOR_FAULT=f"{step}:3", **settings)
    assert crashed.wait(90) == -signal.SIGKILL, crashed.output()[-3000:]
    assert 0 < routed.assert_matches_offsets() < ROWS

    restarted = routed.start(**settings)
    wait_until(lambda: restarted.check_alive() or routed.count() == ROWS, 90, "every record in its table")
    assert restarted.stop() == 0
    everything = {(topic, p): HALF for topic in routed.topics for p in (0, 1)}
    assert routed.offsets() == everything
    assert routed.assert_matches_offsets(everything) == ROWS
    assert "goes to table" in restarted.output()
    created = routed.topics[2]  # made from its first record, given `note` later
    assert routed.services.sql("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                               "AND table_name = %s ORDER BY ordinal_position",
                               (routed.schema, safe_identifier(created).lower()))[:4] == [
        ("kafka_topic", "text"), ("kafka_partition", "integer"), ("kafka_offset", "bigint"), ("event_id", "bigint")]


@pytest.mark.integration
def test_a_pattern_reads_topics_created_while_it_runs(services, tmp_path):
    """KAFKA_TOPICS_REGEX: a topic created after start-up that matches is read into its own
    table; one that does not match is not read."""
    suffix = uuid.uuid4().hex[:8]
    pipeline = Pipeline(services, tmp_path, f"pattern-{suffix}", "unused", "unused", 1)
    schema = f"pattern_{suffix}"
    services.sql(f"CREATE SCHEMA {schema}")

    def topic_with_table(name: str) -> str:
        services.create_topic(name, 1)
        services.sql(f'CREATE TABLE {schema}."{safe_identifier(name)}" (event_id bigint, body text)')
        produce(services.bootstrap_servers, name, [(None, orjson.dumps({"event_id": i, "body": f"{name} «{i}»"}))
                                                    for i in range(50)])
        return name

    def rows(name: str) -> list[tuple[Any, ...]]:
        return services.sql(f'SELECT event_id, body FROM {schema}."{safe_identifier(name)}" ORDER BY event_id')

    first = topic_with_table(f"early.{suffix}")
    replica = pipeline.start(KAFKA_TOPICS="", KAFKA_TOPICS_REGEX=rf"(early|late)\.{suffix}", SINK_TABLE=f"{schema}.${{topic}}",
                             KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS="1000", CONNECTOR_NAME=pipeline.name)
    try:
        wait_until(lambda: replica.check_alive() or len(rows(first)) == 50, 60, "the first topic's rows")
        later, other = topic_with_table(f"late.{suffix}"), topic_with_table(f"other.{suffix}")
        wait_until(lambda: replica.check_alive() or len(rows(later)) == 50, 60, "the later topic's rows")
        assert replica.stop() == 0
    finally:
        pipeline.stop_all()
    assert rows(later) == [(i, f"{later} «{i}»") for i in range(50)] and rows(other) == []
    assert f"topic '{later}' goes to table '{schema}.late_{suffix}' (append)" in replica.output()


@pytest.mark.integration
def test_a_matching_topic_without_its_table_stops_the_replica_naming_both(services, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    pipeline = Pipeline(services, tmp_path, f"missing-{suffix}", "unused", "unused", 1)
    topic = f"orphan-{suffix}"
    services.create_topic(topic, 1)
    produce(services.bootstrap_servers, topic, [(None, b'{"event_id": 1}')])
    replica = pipeline.start(KAFKA_TOPICS="", KAFKA_TOPICS_REGEX=rf"orphan-{suffix}", SINK_TABLE="${topic}_rows")
    try:
        assert replica.wait(60) == 1
    finally:
        pipeline.stop_all()
    assert (f"topic '{topic}' goes to table 'orphan_{suffix}_rows': SINK_TABLE 'orphan_{suffix}_rows' does not exist"
            in replica.output())
