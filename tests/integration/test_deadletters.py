"""Bad records against a real PostgreSQL and Kafka-protocol cluster (I9): with
ERRORS_TOLERANCE=all every record is either its row or a dead letter with a reason —
exactly once, across kills — and with `none` the pipeline stops naming the record,
its offset not committed."""

from __future__ import annotations

import base64
import os
import signal
import uuid

import orjson
import pytest

from connector.embedded.harness import wait_until

pytestmark = pytest.mark.integration

DDL = """
CREATE TABLE {table}_parent (id int PRIMARY KEY);
INSERT INTO {table}_parent VALUES (1), (2);
CREATE TABLE {table} (
    event_id bigint NOT NULL,
    amount int CHECK (amount >= 0),
    code varchar(5),
    parent int REFERENCES {table}_parent (id),
    uniq text UNIQUE,
    big text,
    price numeric(5, 2)
);
CREATE INDEX ON {table} (big);
INSERT INTO {table} (event_id, uniq) VALUES (-1, 'taken');
"""
# Incompressible text far past a btree index row's 2704-byte limit.
OVERSIZED = base64.b64encode(os.urandom(9000)).decode()



def good_value(i: int, **override: object) -> bytes:
    """A record naming every column, so good and bad ones share COPY batches (a refused
    row must be isolated from its batch, not merely sit in a batch of its own)."""
    return orjson.dumps({"event_id": i, "amount": i % 7, "parent": 1 + i % 2, "code": "ok", "uniq": f"u{i}",
                         "big": "small", "price": "1.25", **override})


def bad_value(**override: object) -> bytes:
    """A record like the good ones that only `override` makes bad (no unique value of its own)."""
    return good_value(0, **{"uniq": None, **override})


# Each bad record (as produced) and the error class its dead letter must carry.
BAD = [
    (b"{not json", "MappingError"),                                          # not JSON
    (b"[1, 2, 3]", "MappingError"),                                          # not an object
    (b"\xff\xfe{}", "MappingError"),                                         # not UTF-8
    (None, "MappingError"),                                                  # a tombstone in append mode
    (bad_value(event_id="x"), "MappingError"),                           # cannot convert to bigint
    (bad_value(event_id=None), "MappingError"),                          # NOT NULL
    (bad_value(code="toolong"), "MappingError"),                         # varchar(5)
    (bad_value(code="a\u0000b"), "MappingError"),                        # NUL in text
    (bad_value(amount=-5), "CheckViolation"),                            # CHECK, in the database
    (bad_value(parent=99), "ForeignKeyViolation"),                       # foreign key
    (bad_value(uniq="taken"), "UniqueViolation"),                        # unique (row -1 has it), append mode
    (bad_value(big=OVERSIZED), "ProgramLimitExceeded"),                  # oversized for its index
    (bad_value(price=12345.5), "NumericValueOutOfRange"),                # numeric(5,2)
]


def mixed(n_good: int) -> tuple[list[tuple[bytes, bytes | None]], set[int], dict[int, str]]:
    """`n_good` good records with the bad ones spread between them; the expected
    event IDs (-1: the row the table starts with), and the expected error class by
    position in the stream."""
    messages: list[tuple[bytes, bytes | None]] = []
    good, bad = {-1}, {}
    every = max(1, n_good // (len(BAD) * 3))
    for i in range(n_good):
        messages.append((str(i).encode(), good_value(i)))
        good.add(i)
        if i % every == 0:
            value, error_class = BAD[(i // every) % len(BAD)]
            bad[len(messages)] = error_class
            messages.append((f"bad-{i}".encode(), value))
    return messages, good, bad


def partition_of(i: int) -> int:
    return i % 3


def stored_deadletters(p) -> list[tuple]:
    return p.services.sql('SELECT topic, "partition", "offset", key, value, error_class, error, checkpoint_id '
                          "FROM eos_connector.deadletters WHERE pipeline = %s", (p.name,))


def position_of(p, messages) -> dict[tuple[int, int], int]:
    """(partition, offset) -> index in `messages`, as `produce` spread them."""
    seen: dict[int, int] = {}
    where = {}
    for i in range(len(messages)):
        part = partition_of(i)
        where[(part, seen.get(part, 0))] = i
        seen[part] = seen.get(part, 0) + 1
    return where


def assert_rows_plus_deadletters_exact(p, messages, good, bad) -> None:
    ids = [r[0] for r in p.rows("event_id", "ORDER BY event_id")]
    assert ids == sorted(good), f"{len(ids)} rows for {len(good)} good records"
    letters = stored_deadletters(p)
    where = position_of(p, messages)
    found = {where[(r[1], r[2])]: r for r in letters}
    assert len(found) == len(letters), "a record was dead-lettered twice"
    assert sorted(found) == sorted(bad), "dead letters differ from the bad records produced"
    for index, row in found.items():
        assert row[5] == bad[index], f"record {index}: {row[5]} ({row[6]}), expected {bad[index]}"
        assert (row[3], row[4]) == messages[index], "the dead letter does not hold the record's bytes"
        assert row[6], "a dead letter without its reason"
    committed = {c[0] for c in p.checkpoints()}
    assert {r[7] for r in letters} <= committed


@pytest.mark.parametrize("fault, backend", [(None, "memory"), ("after_rows_written:2", "filesystem"),
                                            ("after_db_commit:3", "postgres"), ("after_offsets_locked:4", "memory")])
def test_every_record_is_a_row_or_a_dead_letter_exactly_once(make_pipeline, fault, backend):
    """Good and bad records mixed, a replica killed mid-protocol and restarted: rows plus
    dead letters equal exactly what was produced; each dead letter names its reason."""
    p = make_pipeline(DDL, partitions=3)
    messages, good, bad = mixed(600)
    p.produce(messages, partition_of=partition_of)
    settings = {"ERRORS_TOLERANCE": "all", "STATE_BACKEND": backend, "CHECKPOINT_MAX_RECORDS": "97"}
    if fault:
        crashed = p.start(CONNECTOR_FAULT=fault, **settings)
        assert crashed.wait(60) == -signal.SIGKILL, crashed.output()[-3000:]
    replica = p.start(**settings)
    p.wait_caught_up(replica)
    assert replica.stop() == 0, replica.output()[-3000:]
    assert_rows_plus_deadletters_exact(p, messages, good, bad)
    counts = [c[2] for c in p.checkpoints()]
    assert sum(c["deadlettered"] for c in counts) == len(bad)
    assert "dead-lettered: CheckViolation" in replica.output() or fault


@pytest.mark.parametrize("value, reason", [
    (orjson.dumps({"event_id": 0, "amount": -5}), "CheckViolation"),
    (orjson.dumps({"event_id": 0, "parent": 99}), "ForeignKeyViolation"),
])
def test_database_refusal_stops_naming_the_record(make_pipeline, value, reason):
    """ERRORS_TOLERANCE=none: a row the database refuses stops the pipeline with the
    record's topic[partition]@offset and the reason; its checkpoint is not committed, so
    nothing is skipped, and a restart stops on it again."""
    p = make_pipeline(DDL, partitions=1)
    good = [(b"k", orjson.dumps({"event_id": i})) for i in range(40)]
    p.produce(good[:25] + [(b"bad", value)] + good[25:], partition_of=lambda i: 0)
    replica = p.start(CHECKPOINT_MAX_RECORDS="10")
    assert replica.wait(60) == 1
    out = replica.output()
    assert f"record {p.topic}[0]@25 was refused by the database" in out and reason in out
    assert p.offsets() == {0: 20} and p.count() == 1 + 20  # the seeded row and the first two checkpoints
    again = p.start(CHECKPOINT_MAX_RECORDS="10")
    assert again.wait(60) == 1 and f"{p.topic}[0]@25" in again.output()
    assert p.offsets() == {0: 20}


def test_upsert_isolates_one_key_and_keeps_its_other_records(make_pipeline):
    """Upsert: a refused record among several for the same key in one checkpoint is
    dead-lettered alone; the key's other records apply in partition order (additive
    columns summed, the last label kept)."""
    p = make_pipeline("CREATE TABLE {table} (k text PRIMARY KEY, n int NOT NULL CHECK (n < 100), label text)",
                      partitions=1)
    messages = [(b"a", orjson.dumps({"k": "a", "n": 1, "label": "one"})),
                (b"a", orjson.dumps({"k": "a", "n": 200, "label": "huge"})),  # refused: 1 + 200 >= 100
                (b"a", orjson.dumps({"k": "a", "n": 4, "label": "four"})),
                (b"b", orjson.dumps({"k": "b", "n": 10})),
                (b"b", orjson.dumps({"k": "b", "n": 95})),                     # refused: 10 + 95 >= 100
                (b"b", orjson.dumps({"k": "b", "n": 20})),
                (b"c", orjson.dumps({"k": "c", "n": 5}))]
    p.produce(messages, partition_of=lambda i: 0)
    replica = p.start(SINK_MODE="upsert", SINK_ADDITIVE_COLUMNS="n", ERRORS_TOLERANCE="all",
                      CHECKPOINT_INTERVAL_MS="2000")
    p.wait_caught_up(replica, {0: len(messages)})
    assert replica.stop() == 0
    assert sorted(p.rows("k, n, label")) == [("a", 5, "four"), ("b", 30, None), ("c", 5, None)]
    assert sorted((r[2], r[5]) for r in stored_deadletters(p)) == [(1, "CheckViolation"), (4, "CheckViolation")]


def test_replay_after_the_table_is_fixed(make_pipeline):
    """`eos-connector deadletters replay` writes the dead letters the table now accepts,
    once: a second replay finds nothing; the still-refused stay with their reason."""
    p = make_pipeline(DDL, partitions=1)
    good = [(str(i).encode(), orjson.dumps({"event_id": i})) for i in range(10)]
    bad = [(b"neg", orjson.dumps({"event_id": 100, "amount": -5})),
           (b"fk", orjson.dumps({"event_id": 101, "parent": 99})),
           (b"json", b"{nope")]
    p.produce(good + bad, partition_of=lambda i: 0)
    replica = p.start(ERRORS_TOLERANCE="all")
    p.wait_caught_up(replica, {0: 13})
    assert replica.stop() == 0
    listed = p.cli(["deadletters", "list"])
    assert listed.returncode == 0 and f"{p.topic}[0]@10" in listed.stdout and "CheckViolation" in listed.stdout

    p.services.sql(f"ALTER TABLE {p.table} DROP CONSTRAINT {p.table}_amount_check")
    dry = p.cli(["deadletters", "replay", "--dry-run"])
    assert "would replay 1" in dry.stdout and p.count() == 11
    done = p.cli(["deadletters", "replay"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replayed 1" in done.stdout and "2 still refused" in done.stdout
    assert f"{p.topic}[0]@11: ForeignKeyViolation" in done.stdout
    assert sorted(r[0] for r in p.rows("event_id")) == [-1, *range(10), 100]
    again = p.cli(["deadletters", "replay"])
    assert "replayed 0" in again.stdout and p.count() == 12
    replayed = p.services.sql("SELECT \"offset\" FROM eos_connector.deadletters "
                              "WHERE pipeline = %s AND replayed_at IS NOT NULL", (p.name,))
    assert replayed == [(10,)]


def test_dead_letters_forwarded_to_a_topic(make_pipeline, services):
    """ERRORS_DEADLETTER_TOPIC: each dead letter also reaches the topic after the commit,
    with the record's key, value and the error in headers."""
    from confluent_kafka import Consumer

    p = make_pipeline(DDL, partitions=1)
    dlq = f"{p.topic}_dlq"
    services.create_topic(dlq, 1)
    p.produce([(b"1", orjson.dumps({"event_id": 1})), (b"bad", b"{nope"),
               (b"2", orjson.dumps({"event_id": 2, "amount": -1}))], partition_of=lambda i: 0)
    replica = p.start(ERRORS_TOLERANCE="all", ERRORS_DEADLETTER_TOPIC=dlq)
    p.wait_caught_up(replica, {0: 3})
    wait_until(lambda: p.services.sql("SELECT count(*) FROM eos_connector.deadletters WHERE pipeline = %s "
                                      "AND forwarded_at IS NOT NULL", (p.name,)) == [(2,)], 60, "forwarded")
    assert replica.stop() == 0
    consumer = Consumer({"bootstrap.servers": services.bootstrap_servers, "group.id": f"{dlq}-check",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([dlq])
    got = []
    wait_until(lambda: got.extend(m for m in consumer.consume(10, 1) if m.error() is None) or len(got) >= 2,
               30, "the dead letters on the topic")
    consumer.close()
    assert [(m.key(), m.value()) for m in got] == [(b"bad", b"{nope"), (b"2", orjson.dumps({"event_id": 2, "amount": -1}))]
    headers = dict(got[1].headers())
    assert headers["eos.error.class"] == b"CheckViolation" and headers["eos.source"] == f"{p.topic}[0]@2".encode()
    assert headers["eos.pipeline"] == p.name.encode()


def test_two_replicas_never_forward_the_same_dead_letter(services):
    """Each forwarder claims its batch with SKIP LOCKED: while one holds rows, another
    forwards only the rest, and each dead letter is marked forwarded once."""
    from connector.ops.migrate import upgrade
    from connector.routing import TableConfig
    from connector.sink.connection import engine_for
    from connector.sink.postgres import PostgresStore

    engine = engine_for(services.database_url)
    upgrade(engine, "eos")
    engine.dispose()
    pipeline = f"forward-{uuid.uuid4().hex[:8]}"
    services.sql("INSERT INTO eos.deadletters (pipeline, topic, partition, \"offset\", checkpoint_id, replica, "
                 "headers, error_class, error) SELECT %s, 't', 0, g, 1, 'r', '[]', 'E', 'e' "
                 "FROM generate_series(0, 9) g", [pipeline])
    first, second = (PostgresStore(services.database_url, pipeline, name, "eos", routes=TableConfig((None, "unused")))
                     for name in ("first", "second"))
    seen: dict[str, list[int]] = {"first": [], "second": []}

    def send_second(rows):
        seen["second"] += [r.offset for r in rows]
        return [(r.topic, r.partition, r.offset, r.checkpoint_id) for r in rows]

    def send_first(rows):
        seen["first"] += [r.offset for r in rows]
        second.forward_deadletters(100, send_second)  # runs while the first holds its rows
        return [(r.topic, r.partition, r.offset, r.checkpoint_id) for r in rows]

    try:
        first.forward_deadletters(4, send_first)
    finally:
        first.close()
        second.close()
    assert seen == {"first": [0, 1, 2, 3], "second": [4, 5, 6, 7, 8, 9]}
    assert services.sql("SELECT count(*) FROM eos.deadletters WHERE pipeline = %s AND forwarded_at IS NOT NULL",
                        [pipeline]) == [(10,)]


def test_a_record_dead_lettered_again_after_an_offsets_reset_has_one_dead_letter(services):
    """Read again after `offsets reset` and refused again: the newest dead letter stays, so a
    replay applies the record once."""
    from connector.models import PartitionRange, Record, Snapshot
    from connector.ops.migrate import upgrade
    from connector.routing import TableConfig
    from connector.sink.connection import engine_for
    from connector.sink.mapping import tolerant
    from connector.sink.postgres import PostgresStore

    engine = engine_for(services.database_url)
    upgrade(engine, "eos")
    engine.dispose()
    table, pipeline = f"reset_{uuid.uuid4().hex[:8]}", f"reset-{uuid.uuid4().hex[:8]}"
    services.sql(f"CREATE TABLE {table} (event_id bigint NOT NULL CHECK (event_id >= 0))")
    store = PostgresStore(services.database_url, pipeline, "r1", "eos", routes=TableConfig((None, table)),
                          tolerate_errors=True)
    mapper = tolerant(store.prepare())
    records = [Record("t", 0, 0, None, b'{"event_id": 1}'), Record("t", 0, 1, None, b'{"event_id": -1}')]
    try:
        for start in (None, 0):  # the second time after an offsets reset to 0
            snapshot = Snapshot(store.next_checkpoint_id(), (PartitionRange("t", 0, start, 2, 2),), records,
                                tuple(mapper(r) for r in records))
            assert store.commit(snapshot, lambda: None).deadlettered == 1  # its snapshot made durable before
            services.sql("UPDATE eos.offsets SET next_offset = 0 WHERE pipeline = %s", [pipeline])
    finally:
        store.close()
    assert services.sql("SELECT \"offset\", error_class FROM eos.deadletters WHERE pipeline = %s",
                        [pipeline]) == [(1, "CheckViolation")]
