"""What only a real Apache Kafka broker shows: transactions (aborted ones, commit
markers), the log cleaner, the consumer group protocol (KIP-848), leader and
coordinator failover, retention. Each runs against a real KRaft cluster of three nodes
(the suite's own with EOS_TEST_BACKEND=apache; else one started beside the suite's
database). Without Java or Maven they skip, naming what is missing; on CI they fail."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import uuid

import orjson
import pytest
from confluent_kafka import Producer

from connector.embedded.harness import free_port, make_producer, wait_until
from tests.chaos.test_crash_steps import is_stopped
from tests.integration.test_observability import get, metric

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL, body text)"
KV_DDL = "CREATE TABLE {table} (k text PRIMARY KEY, v bigint NOT NULL, note text)"


def body(i: int) -> str | None:
    """Text as users have it: non-ASCII, quotes, a backslash, a tab, a newline; every
    fifth record a null."""
    return None if i % 5 == 0 else f"Zoë \"quoted\" \\ tab\there\nline {i} — ünïcode"


def event(i: int) -> bytes:
    """Raw UTF-8 JSON, or (every odd record) JSON with \\u escapes for everything non-ASCII."""
    doc = {"event_id": i, "body": body(i)}
    return json.dumps(doc, ensure_ascii=True).encode() if i % 2 else orjson.dumps(doc)


def transactional(bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}",
                         "linger.ms": 5, "log_level": 3})
    producer.init_transactions(30)
    return producer


def status_lags(p) -> dict[int, int]:
    done = p.cli(["status", "--json"])
    assert done.returncode == 0, done.stderr
    return {r["partition"]: r["lag"] for r in orjson.loads(done.stdout)["partitions"]}


def test_aborted_transactions_never_land_and_lag_reaches_zero(make_apache_pipeline):
    """Two transactional producers interleave their transactions on three partitions; one
    in three is aborted. Exactly the committed records land (read_committed), the commit
    markers never break the compare-and-set, and once caught up next_offset is the high
    watermark — past the last marker — so lag is 0 in /metrics and `status`, /readyz is
    ready and no progress line reports a lag."""
    p = make_apache_pipeline(DDL, partitions=3)
    port = free_port()
    replica = p.start(HTTP_PORT=str(port), HTTP_HOST="127.0.0.1", CHECKPOINT_INTERVAL_MS="300")
    a, b = transactional(p.services.bootstrap_servers), transactional(p.services.bootstrap_servers)
    committed: list[int] = []
    i = 0
    for round_ in range(12):
        a.begin_transaction()
        b.begin_transaction()
        for _ in range(40):  # records of both transactions interleave in each partition
            for producer in (a, b):
                producer.produce(p.topic, event(i), partition=i % 3)
                i += 1
        a.flush()
        b.flush()
        outcome_a, outcome_b = round_ % 3 != 1, round_ % 3 != 2
        a.commit_transaction() if outcome_a else a.abort_transaction()
        b.commit_transaction() if outcome_b else b.abort_transaction()
        base = i - 80
        committed += [base + k for k in range(80) if (outcome_a, outcome_b)[k % 2]]
    p.wait_for_rows(len(committed), 90, replica)
    wait_until(lambda: replica.check_alive() or p.offsets() == p.watermarks(), 60,
               "next_offset to reach the high watermark, past the last commit marker")
    rows = sorted(p.rows("event_id, body"))
    assert rows == [(i, body(i)) for i in sorted(committed)], f"{len(rows)} rows for {len(committed)} committed records"

    def caught_up() -> bool:
        text = get(port, "/metrics")[1]
        return all(metric(text, "eos_consumer_lag_records", topic=p.topic, partition=str(k)) == 0 for k in range(3))
    wait_until(caught_up, 30, "lag 0 on every partition in /metrics")
    assert status_lags(p) == {0: 0, 1: 0, 2: 0}
    assert get(port, "/readyz")[0] == 200
    seen = len(replica.output())
    time.sleep(6)  # a progress line is due every 5 s while there is lag
    assert "progress:" not in replica.output()[seen:], "a lag is still reported after catching up"
    assert replica.stop() == 0
    assert not re.search(r"fenced", replica.output()), "a commit marker broke the compare-and-set"


def kv_message(key: int, version: int) -> tuple[bytes, bytes | None]:
    record_key = orjson.dumps({"k": f"clé-{key}"})
    if (key + version) % 7 == 6:
        return record_key, None  # a tombstone
    return record_key, orjson.dumps({"k": f"clé-{key}", "v": version, "note": f"v{version} \u00e9\t\"{key}\""})


def produce_rounds(p, rounds: range, keys: int, expected: dict[str, int]) -> int:
    """Each round updates (or deletes) every key; a pause between rounds rolls segments."""
    producer = make_producer(p.services.bootstrap_servers)
    count = 0
    for version in rounds:
        messages = [kv_message(key, version) for key in range(keys)]
        p.produce(messages, producer=producer)
        for key, value in messages:
            name = orjson.loads(key)["k"]
            if value is None:
                expected.pop(name, None)
            else:
                expected[name] = version
        count += len(messages)
        time.sleep(0.25)
    return count


def test_compacted_topic_in_upsert_mode_ends_with_the_latest_value_per_key(make_apache_pipeline, apache):
    """A compacted topic with small segments, so the log cleaner runs while the pipeline
    is stopped: on restart its next_offset may point into a cleaned range. Rows end as
    each key's latest value; keys whose latest record is a tombstone are absent (the
    tombstones are kept long enough: delete.retention.ms outlasts the stop)."""
    p = make_apache_pipeline(KV_DDL, partitions=2)
    apache.configure_topic(p.topic, {"cleanup.policy": "compact", "segment.ms": "100",
                                     "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0",
                                     "delete.retention.ms": "600000"})
    settings = {"SINK_MODE": "upsert", "CHECKPOINT_MAX_RECORDS": "50"}
    expected: dict[str, int] = {}
    produced = produce_rounds(p, range(4), 40, expected)
    replica = p.start(**settings)
    p.wait_caught_up(replica)
    assert replica.stop() == 0
    produced += produce_rounds(p, range(4, 16), 40, expected)
    wait_until(lambda: len(p.read_topic()) < produced * 0.8, 90, "the log cleaner to compact the topic")
    replica = p.start(**settings)
    p.wait_caught_up(replica, timeout_s=90)
    assert replica.stop() == 0
    rows = {k: v for k, v, _ in p.rows("k, v, note")}
    assert rows == expected
    assert all(note == f"v{v} \u00e9\t\"{k.split('-')[1]}\"" for k, v, note in p.rows("k, v, note"))


GROUP_PROTOCOLS = {
    "classic-eager": {"KAFKA_PARTITION_ASSIGNMENT_STRATEGY": "range"},
    "classic-cooperative-sticky": {"KAFKA_PARTITION_ASSIGNMENT_STRATEGY": "cooperative-sticky"},
    "consumer": {"KAFKA_GROUP_PROTOCOL": "consumer"},  # KIP-848: the broker assigns
}


@pytest.mark.parametrize("protocol", GROUP_PROTOCOLS)
def test_group_protocols_scale_and_fence_zombies(make_apache_pipeline, protocol):
    """Scaling 1 -> 3 -> 1 and a replica frozen past its session, under each group
    protocol: every record exactly once, and the frozen replica, woken, loses its
    partitions or is fenced at commit."""
    p = make_apache_pipeline(DDL, partitions=6)
    settings = {**GROUP_PROTOCOLS[protocol], "CHECKPOINT_INTERVAL_MS": "300"}
    n = 0

    def more(count: int, *alive) -> None:
        nonlocal n
        p.produce([(None, event(i)) for i in range(n, n + count)], partition_of=lambda i: i % 6)
        n += count
        p.wait_for_rows(n, 90, *alive)

    first = p.start(**settings)
    more(600, first)
    others = [p.start(host=h, **settings) for h in ("b", "c")]
    wait_until(lambda: all(re.search(r"assigned \S", r.output()) for r in others), 60, "3 replicas sharing 6 partitions")
    more(600, first, *others)
    zombie = others[0]
    zombie.signal(signal.SIGSTOP)
    time.sleep(9)  # past the session: 3 s (classic, the replica's), 6 s (consumer, the broker's)
    more(600, first, others[1])
    zombie.signal(signal.SIGCONT)
    wait_until(lambda: re.search(r"lost \d+ partition|fenced", zombie.output()), 60,
               "the woken replica to lose its partitions or be fenced")
    more(600, first, *others)
    for replica in others:
        assert replica.stop() == 0
    more(600, first)
    assert first.stop() == 0
    p.assert_exact(n)


@pytest.mark.parametrize("step", ["after_rows_written", "after_db_commit"])
def test_leader_and_coordinator_killed_during_a_commit(make_apache_pipeline, apache, step):
    """The replica freezes inside its second commit (rows written, or the database
    committed and Kafka's commit not yet sent); meanwhile the group coordinator, which
    also leads partitions of the topic, is SIGKILLed. Woken, it finishes against the new
    leader and coordinator; the broker comes back; every record exactly once.

    One node holds both roles: two of the three nodes down would leave the KRaft quorum
    without a majority, so no partition could get a new leader until they came back."""
    p = make_apache_pipeline(DDL, partitions=4)
    p.produce([(None, event(i)) for i in range(1200)], partition_of=lambda i: i % 4)
    replica = p.start(CONNECTOR_FAULT=f"{step}:2:stop", CHECKPOINT_MAX_RECORDS="300", KAFKA_SESSION_TIMEOUT_MS="60000")
    wait_until(lambda: replica.check_alive() or is_stopped(replica.pid), 60, "the replica to freeze inside its commit")
    victim = apache.group_coordinator(p.name)
    leaders = {k: apache.leader(p.topic, k) for k in range(4)}
    assert victim in leaders.values(), f"coordinator {victim} leads none of the partitions: {leaders}"
    apache.kill(victim)
    replica.signal(signal.SIGCONT)
    p.wait_for_rows(1200, 120, replica)
    apache.restart(victim)
    p.produce([(None, event(i)) for i in range(1200, 1600)], partition_of=lambda i: i % 4)
    p.wait_caught_up(replica, timeout_s=120)
    assert replica.stop() == 0
    p.assert_exact(1600)


def test_broker_faults_while_records_flow(make_apache_pipeline, apache):
    """A broker frozen past its session, the active controller killed, a rolling restart
    of every node — while an idempotent producer writes and two replicas commit. The
    table holds exactly the records the topic holds, each once."""
    p = make_apache_pipeline(DDL, partitions=6)
    done = threading.Event()
    errors: list[str] = []

    def produce() -> None:
        producer = make_producer(p.services.bootstrap_servers)
        i = 0
        while not done.is_set():
            try:
                p.produce([(None, event(k)) for k in range(i, i + 100)], partition_of=lambda k: k % 6,
                          producer=producer)
            except RuntimeError as exc:
                errors.append(str(exc))
            i += 100
            time.sleep(0.05)

    producer = threading.Thread(target=produce, daemon=True)
    replicas = [p.start(), p.start(host="b")]
    producer.start()
    try:
        time.sleep(3)
        frozen = apache.leader(p.topic, 0)
        apache.pause(frozen)
        time.sleep(8)  # past broker.session.timeout.ms: the controller fences it, leadership moves
        apache.resume(frozen)
        apache.wait_for_brokers()
        controller = apache.active_controller()
        apache.kill(controller)
        time.sleep(3)
        apache.restart(controller)
        apache.rolling_restart()
        time.sleep(2)
    finally:
        done.set()
        producer.join(120)
    for replica in replicas:
        p.wait_caught_up(replica, timeout_s=120)
    for replica in replicas:
        assert replica.stop() == 0
    in_topic = sorted(orjson.loads(value)["event_id"] for _, value in p.read_topic())
    assert len(in_topic) == len(set(in_topic)), "the idempotent producer wrote a duplicate"
    assert sorted(r[0] for r in p.rows("event_id")) == in_topic


def test_records_deleted_by_retention_before_they_were_read(make_apache_pipeline, apache):
    """A stopped pipeline's next records are deleted by retention. By default the
    replica stops with an error naming the partition and the offsets lost, and nothing
    is skipped; with ON_DATA_LOSS=skip it goes on from the earliest offset kept, says so
    in a warning and counts the records in eos_records_deleted_unread_total."""
    p = make_apache_pipeline(DDL, partitions=1)
    p.produce([(None, event(i)) for i in range(100)])
    replica = p.start()
    p.wait_caught_up(replica)
    assert replica.stop() == 0
    apache.configure_topic(p.topic, {"segment.ms": "100", "retention.ms": "1000"})
    for start in range(100, 150, 10):
        p.produce([(None, event(i)) for i in range(start, start + 10)])
        time.sleep(0.3)  # segments roll, so retention deletes them one by one
    wait_until(lambda: p.log_starts() == {0: 150}, 90, "retention to delete the 50 records the pipeline has not read")
    apache.configure_topic(p.topic, {"retention.ms": "-1"})  # what comes next stays
    time.sleep(2)  # the brokers apply it
    p.produce([(None, event(i)) for i in range(150, 200)])
    assert p.log_starts() == {0: 150}

    failing = p.start()
    wait_until(lambda: not failing.alive(), 60, "the replica to stop")
    assert failing.stop() != 0
    assert re.search(rf"{p.topic}\[0\]: records 100\.\.149 \(50\) were deleted by the broker",
                     failing.output()), failing.output()[-2000:]
    assert p.count() == 100 and p.offsets() == {0: 100}

    port = free_port()
    skipping = p.start(ON_DATA_LOSS="skip", HTTP_PORT=str(port), HTTP_HOST="127.0.0.1")
    p.wait_caught_up(skipping)
    text = get(port, "/metrics")[1]
    assert metric(text, "eos_records_deleted_unread_total", partition="0", topic=p.topic) == 50
    assert skipping.stop() == 0
    assert "were deleted by the broker before the pipeline read them; going on from offset" in skipping.output()
    assert sorted(r[0] for r in p.rows("event_id")) == list(range(100)) + list(range(150, 200))


def test_every_node_logs_what_it_does(apache):
    """The brokers' own log lines reach each node's log, which errors about a node quote:
    a topic just created (replication factor 3) shows in the log of every node."""
    topic = f"logged_{uuid.uuid4().hex[:8]}"
    apache.create_topic(topic, 2)
    for node_id, node in apache.nodes.items():
        wait_until(lambda node=node: f"Created log for partition {topic}-1" in node.output(), 30,
                   f"node {node_id} to log the new topic's replica")
