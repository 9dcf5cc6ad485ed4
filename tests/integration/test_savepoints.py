"""Savepoints and offset resets against real services: a savepoint of a running pipeline
includes what it had read, stop-with-savepoint stops it, a renamed pipeline started from
the savepoint continues exactly where the old one stopped, and resets are refused while
replicas are live."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from connector.embedded.harness import wait_until
from connector.embedded.kafka import EmbeddedKafka
from connector.embedded.kafka_control import RemoteKafka

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL)"


def events(start: int, stop: int) -> list[tuple[None, bytes]]:
    return [(None, orjson.dumps({"event_id": i})) for i in range(start, stop)]


def cli(p, *args: str, **overrides: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "connector", *args], env={**os.environ, **p.env(**overrides)},
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_savepoint_stop_and_renamed_pipeline(make_pipeline):
    p = make_pipeline(DDL, partitions=3)
    slow = {"CHECKPOINT_INTERVAL_MS": "600000"}  # only a request makes this replica commit
    p.produce(events(0, 300), partition_of=lambda i: i % 3)
    replica = p.start(**slow)
    wait_until(lambda: replica.check_alive() or "assigned" in replica.output(), 60, "the assignment")

    code, out = cli(p, "savepoint", "create", "before-upgrade")
    assert code == 0, out
    assert p.count() == 300  # the replica checkpointed on request, then the cut was taken
    assert "before-upgrade" in out and "3 partition(s)" in out

    p.produce(events(300, 450), partition_of=lambda i: i % 3)
    code, out = cli(p, "savepoint", "create", "final", "--stop")
    assert code == 0, out
    assert replica.wait(30) == 0  # stopped after its final checkpoint
    assert p.count() == 450 and sum(p.offsets().values()) == 450
    assert cli(p, "savepoint", "create", "final")[0] == 1  # names are unique

    # A renamed pipeline (new name, new group) continues from the savepoint: no record twice.
    renamed = {"CONNECTOR_NAME": p.name + "-v2", "START_FROM_SAVEPOINT": "final"}
    p.produce(events(450, 600), partition_of=lambda i: i % 3)
    successor = p.start(**renamed)
    p.wait_for_rows(600, 60, successor)
    assert successor.stop() == 0
    again = p.start(**renamed)  # a restart with the variable still set resumes; it does not rewind
    p.produce(events(600, 630), partition_of=lambda i: i % 3)
    p.wait_for_rows(630, 60, again)
    assert again.stop() == 0
    p.assert_exact(630)
    code, out = cli(p, "savepoint", "list", "--json")
    assert code == 0 and {s["name"] for s in orjson.loads(out)} >= {"before-upgrade", "final"}


def test_offsets_reset(make_pipeline):
    p = make_pipeline(DDL, partitions=2)
    p.produce(events(0, 100), partition_of=lambda i: i % 2)
    replica = p.start()
    p.wait_for_rows(100, 60, replica)

    code, out = cli(p, "offsets", "reset", "--to", "earliest")
    assert code == 1 and "live replica(s)" in out and "nothing was changed" in out
    code, out = cli(p, "offsets", "reset", "--to", "earliest", "--dry-run")
    assert code == 0 and "would reset" in out and f"{p.topic}[0] 50 -> 0" in out
    assert p.offsets() == {0: 50, 1: 50}
    assert replica.stop() == 0

    code, out = cli(p, "offsets", "reset", "--to", "latest")  # skip nothing new: already at the end
    assert code == 0 and p.offsets() == {0: 50, 1: 50}
    p.produce(events(100, 140), partition_of=lambda i: i % 2)
    code, out = cli(p, "offsets", "reset", "--to", "latest")  # skip the 40 new records
    assert code == 0 and p.offsets() == {0: 70, 1: 70}
    code, out = cli(p, "offsets", "reset", "--to", "earliest")  # all of it again
    assert code == 0 and p.offsets() == {0: 0, 1: 0}
    code, out = cli(p, "offsets", "reset", "--to", "savepoint:nope")
    assert code == 1 and "no savepoint named 'nope'" in out
    code, out = cli(p, "offsets", "reset", "--to", "yesterday")
    assert code == 1 and "expected earliest, latest" in out


def test_offsets_reset_to_a_timestamp(services, make_pipeline):
    """Needs a broker that answers ListOffsets by timestamp: the librdkafka mock cluster
    answers every such lookup with -1 (no offset), so this runs against real Kafka only."""
    if isinstance(services.kafka, (EmbeddedKafka, RemoteKafka)):
        pytest.skip("the Kafka-protocol mock cluster does not look offsets up by timestamp")
    p = make_pipeline(DDL, partitions=1)
    p.produce(events(0, 10))
    code, out = cli(p, "offsets", "reset", "--to", "timestamp:2000-01-01T00:00:00Z")
    assert code == 0 and p.offsets() == {0: 0}
    code, out = cli(p, "offsets", "reset", "--to", "timestamp:2999-01-01T00:00:00Z")
    assert code == 0 and p.offsets() == {0: 10}
