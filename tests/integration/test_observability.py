"""/metrics, /healthz and /readyz of a running `eos-connector run`."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

import orjson
import pytest

from connector.embedded.harness import free_port, wait_until

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL)"


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # as exposed: sorted
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + "$", text, re.M)
    return float(match.group(1)) if match else None


def test_metrics_and_probes(make_pipeline):
    p = make_pipeline(DDL, partitions=3)
    port = free_port()
    replica = p.start(HTTP_PORT=str(port), HTTP_HOST="127.0.0.1")
    wait_until(lambda: replica.check_alive() or get(port, "/healthz")[0] == 200, 30, "/healthz to answer")
    p.produce([(None, orjson.dumps({"event_id": i})) for i in range(500)], partition_of=lambda i: i % 3)
    p.wait_for_rows(500, 60, replica)

    def settled() -> bool:
        text = get(port, "/metrics")[1]
        return metric(text, "eos_records_written_total") == 500 and all(
            metric(text, "eos_consumer_lag_records", partition=str(i), topic=p.topic) == 0 for i in range(3))
    wait_until(settled, 30, "written = 500 and lag 0 on every partition")
    text = get(port, "/metrics")[1]
    assert metric(text, "eos_records_consumed_total") == 500
    assert metric(text, "eos_checkpoints_total", outcome="committed") >= 1
    assert metric(text, "eos_checkpoints_total", outcome="fenced") == 0
    assert metric(text, "eos_assigned_partitions") == 3
    assert metric(text, "eos_commit_latency_seconds_count") >= 1
    assert metric(text, "eos_rebalances_total", kind="assigned") >= 1
    status, body = get(port, "/readyz")
    assert status == 200 and "3 partition(s)" in body
    assert get(port, "/nope")[0] == 404
    assert replica.stop() == 0
    assert get(port, "/healthz")[0] == 0  # gone with the process


def test_port_in_use_is_a_clear_error(make_pipeline):
    p = make_pipeline(DDL)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        replica = p.start(HTTP_PORT=str(port), HTTP_HOST="127.0.0.1")
        assert replica.wait(30) == 2
    assert f"HTTP_PORT={port}: cannot listen on 127.0.0.1:{port}" in replica.output()


def test_json_logs(make_pipeline):
    """LOG_FORMAT=json: every line is one JSON object; commit lines name the checkpoint,
    its partitions with offset ranges, the record count and the elapsed time."""
    p = make_pipeline(DDL, partitions=2)
    p.produce([(None, orjson.dumps({"event_id": i})) for i in range(100)], partition_of=lambda i: i % 2)
    replica = p.start(LOG_FORMAT="json")
    p.wait_for_rows(100, 60, replica)
    assert replica.stop() == 0
    lines = [orjson.loads(line) for line in replica.output().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    commits = [line["message"] for line in lines if re.match(r"checkpoint \d+ committed", line["message"])]
    assert commits and all(re.search(rf"\d+ records, partitions {p.topic}\[\d\]:(\d+|first)-\d+.*, [\d.]+ ms$", m)
                           for m in commits)


def test_status_with_kafka_positions(make_pipeline):
    """`status --json` with Kafka configured: per partition the database's next_offset,
    the group's committed offset, the high watermark and the lag; the replicas that
    committed. Partitions nothing was read from yet are listed too."""
    import os
    import subprocess
    import sys

    p = make_pipeline(DDL, partitions=3)
    p.produce([(None, orjson.dumps({"event_id": i})) for i in range(60)], partition_of=lambda i: i % 2)
    replica = p.start()
    p.wait_for_rows(60, 60, replica)
    assert replica.stop() == 0
    p.produce([(None, orjson.dumps({"event_id": i})) for i in range(60, 70)], partition_of=lambda i: 0)
    env = {**os.environ, **p.env()}

    def status(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "connector", "status", *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    doc = orjson.loads(status("--json"))
    rows = {r["partition"]: (r["next_offset"], r["kafka_committed"], r["high_watermark"], r["lag"])
            for r in doc["partitions"]}
    assert rows == {0: (30, 30, 40, 10), 1: (30, 30, 30, 0), 2: (None, None, 0, 0)}
    assert [r["replica"] for r in doc["replicas"]] == [p.checkpoints()[-1][1]]
    text = status()
    assert "next_offset\tkafka_committed\thigh_watermark\tlag\tupdated_by" in text
    assert f"{p.topic}\t0\t30\t30\t40\t10\t" in text and f"{p.topic}\t2\t-\t-\t0\t0\t-" in text


def test_progress_line_while_a_backlog_drains(make_pipeline):
    """A replica draining a backlog logs, at most every 5 s, its rate, lag and ETA."""
    p = make_pipeline(DDL, partitions=2)
    p.produce([(None, orjson.dumps({"event_id": i})) for i in range(16000)], partition_of=lambda i: i % 2)
    # Small checkpoints, each saved, committed and discarded: the drain outlasts 5 s.
    replica = p.start(CHECKPOINT_MAX_RECORDS="10", STATE_BACKEND="postgres")
    p.wait_for_rows(16000, 120, replica)
    assert replica.stop() == 0
    p.assert_exact(16000)
    lines = re.findall(r"progress: (\d+) records/s written over the last (\d+)s, lag (\d+) records, ETA (\S+)",
                       replica.output())
    assert lines, "no progress line while the backlog drained"
    rate, _, lag, eta = lines[0]
    assert 0 < int(lag) < 16000 and int(rate) > 0 and eta.endswith("s")
