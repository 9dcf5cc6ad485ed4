"""I2 in-process: a replica crashes at every named protocol step of its 2nd checkpoint,
with every state backend, against real PostgreSQL and a Kafka-protocol cluster; the next
replica, started in the same process, leaves every record exactly once. The crash is the
fault hook's `raise` action: the replica dies where it stands (the open transaction is
rolled back, nothing after the step runs), as SIGKILL kills it in test_crash_steps.py."""

from __future__ import annotations

import threading

import orjson
import pytest

from connector.config import Settings
from connector.ops.migrate import upgrade
from connector.protocol.faults import STEPS, InjectedFault
from connector.runtime.build import runner_from_settings
from connector.runtime.runner import Runner
from connector.sink.connection import engine_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
BACKENDS = ["memory", "filesystem", "postgres"]
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL, body text)"
N = 900
# The memory backend writes nothing, so it has no mid_snapshot_write step.
CASES = [(step, backend) for step in STEPS if step != "in_revoke" for backend in BACKENDS
         if (step, backend) != ("mid_snapshot_write", "memory")]
# The snapshot left pending by the crash (durable backends): re-committed if the crash
# came before COMMIT, found already committed (step 1: the checkpoint-ID handle) after.
RECOVERED = {"after_snapshot_durable": "committed", "after_offsets_locked": "committed",
             "after_rows_written": "committed", "after_db_commit": "already-committed",
             "after_kafka_commit": "already-committed"}


def outcomes(runner: Runner) -> dict[str, float]:
    registry = runner.metrics.registry
    return {o: registry.get_sample_value("eos_checkpoints_total", {"outcome": o}) or 0.0
            for o in ("committed", "already-committed", "fenced")}


@pytest.mark.parametrize("step, backend", CASES)
def test_crash_at_step_in_process(make_pipeline, step, backend):
    """Crashed at `step` of the 2nd checkpoint, restarted: every record exactly once, and
    the pending snapshot (durable backends) re-committed or found committed as its step says."""
    p = make_pipeline(DDL, partitions=3)
    p.produce([(str(i).encode(), orjson.dumps({"event_id": i, "body": f"é\t\"{i}\"\\n"})) for i in range(N)],
              partition_of=lambda i: i % 3)
    upgrade(engine_for(p.services.database_url), "eos_connector")
    env = p.env(STATE_BACKEND=backend, CHECKPOINT_MAX_RECORDS="200")

    crashed = runner_from_settings(Settings.from_env({**env, "CONNECTOR_FAULT": f"{step}:2:raise"}),
                                   threading.Event())
    with pytest.raises(InjectedFault, match=f"{step} #2"):
        crashed.run()
    assert p.count() <= N

    restarted, exit_code = p.run_in_process(Settings.from_env(env))
    assert exit_code == 0
    p.assert_exact(N)
    assert sorted(r[0] for r in p.rows("body")) == sorted(f"é\t\"{i}\"\\n" for i in range(N))
    recovered = RECOVERED.get(step) if backend != "memory" else None
    counted = outcomes(restarted)
    assert counted["fenced"] == 0
    if recovered == "already-committed":
        assert counted["already-committed"] == 1
    else:
        assert counted["already-committed"] == 0
