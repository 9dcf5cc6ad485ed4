"""`eos-connector demo`: exactly-once under crashes, on embedded backends, in one command.

Starts a Kafka-protocol cluster and a PostgreSQL server in-process, creates a topic of
user-visit events and a target table *without a primary key* (nothing deduplicates
for us), produces events while a real `eos-connector run` process consumes them,
SIGKILLs and restarts that process several times mid-stream, then counts: every
event must be in the table exactly once.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg

from connector.embedded.harness import FAST_GROUP, ConnectorProcess, produce, wait_until
from connector.embedded.kafka import EmbeddedKafka
from connector.embedded.postgres import EmbeddedPostgres

TOPIC, TABLE = "visits", "visits"
PAGES = ("/", "/pricing", "/docs", "/blog", "/signup", "/login")
CREATE_TABLE = """CREATE TABLE visits (
    event_id   bigint      NOT NULL,
    user_id    text        NOT NULL,
    page       text        NOT NULL,
    event_time timestamptz NOT NULL
)"""


START = datetime(2026, 11, 1, tzinfo=UTC)


def visit(event_id: int, rng: random.Random) -> tuple[bytes, bytes]:
    """One user-visit event: (key: the user, value: the JSON event)."""
    user = f"user-{rng.randrange(500)}"
    event = {"event_id": event_id, "user_id": user, "page": rng.choice(PAGES),
             "event_time": (START + timedelta(milliseconds=37 * event_id)).isoformat()}
    return user.encode(), orjson.dumps(event)


def visit_events(count: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [visit(event_id, rng) for event_id in range(count)]


def count_rows(url: str) -> tuple[int, int]:
    """(rows, distinct event IDs) in the demo table."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM visits").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run_demo(records: int = 20_000, partitions: int = 8, kills: int = 3) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="eos-demo-"))
    started = time.monotonic()
    print(f"eos-connector demo: {records} visit events, {partitions} partitions, {kills} SIGKILLs")
    with EmbeddedPostgres() as pg, EmbeddedKafka(brokers=3) as kafka:
        kafka.create_topic(TOPIC, partitions)
        with psycopg.connect(pg.url) as conn:
            conn.execute(CREATE_TABLE)
        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "KAFKA_TOPICS": TOPIC,
               "DATABASE_URL": pg.url, "SINK_TABLE": TABLE, "CONNECTOR_NAME": "demo",
               "CHECKPOINT_INTERVAL_MS": "300", "STATE_BACKEND": "filesystem",
               "STATE_DIR": str(workdir / "state"), "HTTP_PORT": "0", **FAST_GROUP}
        events = visit_events(records)
        producer = threading.Thread(target=_produce_slowly, args=(kafka.bootstrap_servers, events), daemon=True)
        replica = ConnectorProcess(env, workdir / "connector.log").start()
        producer.start()
        kills_done = _kill_and_restart(replica, pg.url, records, kills)
        producer.join()
        wait_until(lambda: count_rows(pg.url)[1] >= records or not replica.alive(), 120, "the pipeline to catch up")
        exit_code = replica.stop()
        rows, distinct = count_rows(pg.url)
    duplicates, lost = rows - distinct, records - distinct
    print(f"records produced: {records}\nrows written:     {rows}\nduplicates:       {duplicates}\n"
          f"lost:             {lost}\nSIGKILLs:         {kills_done}\n"
          f"clean stop exit:  {exit_code}\nelapsed:          {time.monotonic() - started:.1f}s\n"
          f"connector log:    {workdir / 'connector.log'}")
    ok = duplicates == 0 and lost == 0 and exit_code == 0
    print("exactly once: yes" if ok else "exactly once: NO")
    return 0 if ok else 1


def _produce_slowly(bootstrap: str, events: list[tuple[bytes, bytes]], chunks: int = 20) -> None:
    """Produce in chunks over a few seconds, so the kills land while rows flow."""
    size = max(1, len(events) // chunks)
    for i in range(0, len(events), size):
        produce(bootstrap, TOPIC, events[i:i + size])
        time.sleep(0.25)


def _kill_and_restart(replica: ConnectorProcess, url: str, records: int, kills: int) -> int:
    """Kill once the restarted replica has written a fresh share of the rows, so every
    kill lands mid-stream rather than during start-up."""
    rng, step, rows = random.Random(), max(1, records // (kills + 2)), 0
    for k in range(kills):
        target = rows + step
        def written(target: int = target) -> bool:
            return bool(replica.check_alive()) or count_rows(url)[0] >= target
        wait_until(written, 120, f"{target} rows before kill {k + 1}")
        time.sleep(rng.uniform(0, 0.4))  # land anywhere in the checkpoint cycle
        replica.kill()
        rows = count_rows(url)[0]
        print(f"  SIGKILL #{k + 1} at {rows} rows; restarting")
        replica.start()
    return kills


def produce_forever(bootstrap_servers: str, topic: str, rate: int, count: int = 0) -> int:
    """`eos-connector demo-producer`: visit events with event IDs 0, 1, 2, … at `rate`
    per second (the compose file's producer); `count` 0 produces until stopped."""
    from connector.embedded.harness import make_producer

    producer, rng = make_producer(bootstrap_servers), random.Random(7)
    sent, batch = 0, max(1, rate // 10)
    while count == 0 or sent < count:
        started = time.monotonic()
        size = batch if count == 0 else min(batch, count - sent)
        produce(bootstrap_servers, topic, [visit(i, rng) for i in range(sent, sent + size)], producer=producer)
        sent += size
        time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
    return sent
