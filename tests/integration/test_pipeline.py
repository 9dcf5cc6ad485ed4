"""End to end against a real PostgreSQL and a Kafka-protocol cluster, through the real
`eos-connector run` process: each mode and each state backend lands exactly once."""

from __future__ import annotations

import time

import orjson
import pytest

from connector.embedded.harness import wait_until

pytestmark = pytest.mark.integration
BACKENDS = ["memory", "filesystem", "postgres"]
APPEND_DDL = "CREATE TABLE {table} (event_id bigint NOT NULL, user_id text, at timestamptz, doc jsonb)"
UPSERT_DDL = "CREATE TABLE {table} (id int PRIMARY KEY, version int NOT NULL, name text)"


def events(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"u{i % 17}".encode(),
             orjson.dumps({"event_id": i, "user_id": f"u{i % 17}", "at": f"2026-01-01T00:00:{i % 60:02d}Z",
                           "doc": {"i": i, "tags": ["a", "ü"]}}))
            for i in range(start, start + n)]




@pytest.mark.parametrize("backend", BACKENDS)
def test_append_exactly_once(make_pipeline, backend):
    """Append mode, table without a primary key: every record once; offsets = watermarks."""
    p = make_pipeline(APPEND_DDL)
    p.produce(events(1500), partition_of=lambda i: i % 4)
    replica = p.start(STATE_BACKEND=backend, CHECKPOINT_MAX_RECORDS="400")
    p.wait_for_rows(1500, 60, replica)
    p.produce(events(500, start=1500), partition_of=lambda i: i % 4)
    p.wait_for_rows(2000, 60, replica)
    assert replica.stop() == 0
    p.assert_exact(2000)
    assert p.offsets() == p.watermarks()
    assert sum(c[2]["records"] for c in p.checkpoints()) == 2000
    row = p.rows("user_id, at, doc", "WHERE event_id = 61")[0]
    assert row[0] == "u10" and row[1].second == 1 and row[2] == {"i": 61, "tags": ["a", "ü"]}
    if backend == "postgres":
        assert p.services.sql("SELECT count(*) FROM eos_connector.snapshots WHERE pipeline = %s", (p.name,)) == [(0,)]


def upsert_stream(n_keys: int, rounds: int) -> tuple[list[tuple[bytes, bytes | None]], dict[int, tuple[int, str]]]:
    """Updates and tombstones for n_keys keys; returns the messages and the expected table."""
    messages, expected = [], {}
    for version in range(rounds):
        for key in range(n_keys):
            if (key + version) % 5 == 4:
                messages.append((orjson.dumps({"id": key}), None))  # tombstone
                expected.pop(key, None)
            else:
                name = f"name-{key}-{version}"
                messages.append((orjson.dumps({"id": key}),
                                 orjson.dumps({"id": key, "version": version, "name": name})))
                expected[key] = (version, name)
    return messages, expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_upsert_last_write_wins_and_tombstones_delete(make_pipeline, backend):
    """Upsert mode: the final row per key is the last record in partition order; a
    tombstone deletes."""
    p = make_pipeline(UPSERT_DDL)
    messages, expected = upsert_stream(200, 6)
    p.produce(messages, partition_of=lambda i: orjson.loads(messages[i][0])["id"] % 4)
    replica = p.start(STATE_BACKEND=backend, SINK_MODE="upsert", CHECKPOINT_MAX_RECORDS="150")
    wait_until(lambda: p.offsets() == p.watermarks(), 60, "all offsets committed")
    assert replica.stop() == 0
    assert {r[0]: (r[1], r[2]) for r in p.rows("id, version, name")} == expected


def test_bounded_checkpoints_and_a_backlogs_rest_at_once(make_pipeline):
    """I5: no checkpoint ever holds more than CHECKPOINT_MAX_RECORDS records. And the
    records after a backlog's last full checkpoint land as soon as the consumer has read
    every partition to its end, not an interval (here ten minutes) later."""
    p = make_pipeline(APPEND_DDL)
    p.produce(events(1000), partition_of=lambda i: i % 4)
    replica = p.start(CHECKPOINT_MAX_RECORDS="64", CHECKPOINT_INTERVAL_MS="600000")
    p.wait_for_rows(1000, 60, replica)
    assert replica.alive()
    assert [c[2]["records"] for c in p.checkpoints()] == [64] * 15 + [40]
    assert replica.stop() == 0
    p.assert_exact(1000)


def test_interval_checkpoint_without_new_records(make_pipeline):
    """I6: a few records land by time alone while the replica keeps running."""
    p = make_pipeline(APPEND_DDL)
    replica = p.start(CHECKPOINT_INTERVAL_MS="300", CHECKPOINT_MAX_RECORDS="1000000")
    wait_until(lambda: "assigned" in replica.output(), 30, "assignment")
    p.produce(events(3), partition_of=lambda i: 0)
    p.wait_for_rows(3, 30, replica)
    assert replica.alive()
    assert [c[2]["records"] for c in p.checkpoints()] == [3]
    assert replica.stop() == 0


def test_sigterm_final_checkpoint(make_pipeline):
    """I8: SIGTERM commits what is buffered, leaves the group and exits 0."""
    p = make_pipeline(APPEND_DDL)
    p.produce(events(50), partition_of=lambda i: i % 4)
    replica = p.start(CHECKPOINT_INTERVAL_MS="600000", SHUTDOWN_TIMEOUT_MS="10000")
    wait_until(lambda: "assigned" in replica.output(), 30, "assignment")
    time.sleep(2)  # the replica reads the 50 records; nothing commits them but shutdown
    assert p.count() == 0
    assert replica.stop(15) == 0
    p.assert_exact(50)
    assert "stopped cleanly" in replica.output()


def test_revoke_commits_before_release(make_pipeline):
    """I7: when a second replica joins, the first commits its buffer inside the revoke
    callback — the only commit path open with these settings."""
    p = make_pipeline(APPEND_DDL)
    p.produce(events(400), partition_of=lambda i: i % 4)
    slow = {"CHECKPOINT_INTERVAL_MS": "600000", "CHECKPOINT_MAX_RECORDS": "1000000"}
    first = p.start(**slow)
    wait_until(lambda: "assigned" in first.output(), 30, "first assignment")
    time.sleep(2)
    assert p.count() == 0
    second = p.start(**slow)
    p.wait_for_rows(400, 60, first, second)
    assert first.alive() and second.alive()
    p.assert_exact(400)
    assert first.stop() == 0 and second.stop() == 0
    p.assert_exact(400)


def test_mapping_error_stops_without_skipping(make_pipeline):
    """I9: a bad record stops the pipeline naming topic/partition/offset; the records
    before it are committed, its offset is not, and a restart stops on it again."""
    p = make_pipeline(APPEND_DDL)
    good = events(10)
    p.produce(good[:5] + [(b"k", b"{not json")] + good[5:], partition_of=lambda i: 0)
    replica = p.start()
    assert replica.wait(60) == 1
    assert f"{p.topic}[0]@5" in replica.output() and "not valid JSON" in replica.output()
    p.assert_exact(5)
    assert p.offsets() == {0: 5}
    again = p.start()
    assert again.wait(60) == 1
    assert p.offsets() == {0: 5} and p.count() == 5


def test_bad_configuration_exits_2_listing_everything(make_pipeline):
    p = make_pipeline(APPEND_DDL)
    replica = p.start(SINK_MODE="merge", CHECKPOINT_MAX_BYTES="-1", STATE_BACKEND="s3")
    assert replica.wait(30) == 2
    out = replica.output()
    assert "3 problem(s)" in out and "SINK_MODE" in out and "CHECKPOINT_MAX_BYTES" in out and "STATE_BACKEND" in out


def test_missing_table_is_a_clear_error(make_pipeline):
    p = make_pipeline(APPEND_DDL)
    replica = p.start(SINK_TABLE="no_such_table")
    assert replica.wait(30) == 1
    assert "'no_such_table' does not exist" in replica.output()
