"""The chaos runner under pytest (the runner itself: tests/chaos/runner.py).

Fast set (every CI run): three scenarios that together inject every fault kind, one
per mode, backend and assignor family, and one whose faults start at the first record
(a new pipeline: no offsets rows yet; two replicas from its first checkpoints). Long set (`-m slow`): 30 seeded randomized
runs of 100 000 records, 8 faults each of which at least 3 are SIGKILLs after 20%
progress. Each run must end exact: no duplicate, no loss, no wrong value, and no
replica exiting on its own or uncleanly on SIGTERM.
"""

from __future__ import annotations

import collections

import pytest

from connector.embedded.apache import ApacheKafka
from tests.chaos.runner import Scenario, on_real_kafka, run_scenario, scenario_for, unavailable_faults

pytestmark = pytest.mark.chaos

FAST = [
    Scenario(101, 6000, 8, "append", "memory", "range",
             ("kill", "bounce", "zombie", "kafka_errors", "pg_restart", "kill")),
    Scenario(102, 6000, 8, "upsert", "filesystem", "cooperative-sticky",
             ("term", "scale", "kill", "pg_terminate", "lock", "scale", "kafka_errors")),
    Scenario(103, 6000, 8, "aggregate", "postgres", "range",
             ("scale", "kill", "zombie", "pg_restart", "lock", "bounce", "kill")),
    Scenario(104, 6000, 8, "upsert", "filesystem", "range", ("scale", "kill", "zombie", "kill", "scale"), early=True),
]
# Real Apache Kafka's own faults: brokers killed (a partition leader, the group
# coordinator, any) and frozen past their session, while replicas are killed.
FAST_REAL_BROKERS = Scenario(105, 6000, 8, "append", "postgres", "cooperative-sticky",
                             ("leader_kill", "kill", "coordinator_kill", "broker_freeze", "bounce", "scale"))
LONG = [Scenario.generate(seed, 100_000, faults=8, kills=3) for seed in range(1, 31)]


def check(result, services) -> None:
    """Exactly once, no unexpected exit, and every fault of the scenario injected but
    those these services cannot inject."""
    print(result.line())
    assert (result.duplicates, result.lost, result.wrong) == (0, 0, 0), result.line()
    assert result.problems == [], result.line()
    assert set(result.skipped) <= unavailable_faults(services), result.skipped
    assert collections.Counter(result.faults) + collections.Counter(result.skipped) \
        == collections.Counter(result.scenario.faults)


@pytest.mark.parametrize("scenario", FAST, ids=lambda s: f"{s.mode}-{s.backend}-{s.assignor}" + ("-early" if s.early else ""))
def test_fast(services, tmp_path, scenario):
    check(run_scenario(services, tmp_path, on_real_kafka(scenario) if isinstance(services.kafka, ApacheKafka)
                       else scenario), services)


def test_fast_real_brokers(apache_services, tmp_path):
    check(run_scenario(apache_services, tmp_path, FAST_REAL_BROKERS), apache_services)


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("scenario", LONG, ids=lambda s: f"seed{s.seed}")
def test_long(services, tmp_path, scenario):
    """The long set on the suite's services (on Apache Kafka, with its broker faults)."""
    check(run_scenario(services, tmp_path, scenario_for(services, scenario.seed, scenario.records)), services)


def test_sets_cover_every_fault_kind_mode_backend_and_assignor():
    from tests.chaos.runner import ASSIGNORS, BACKENDS, BROKER_FAULTS, FAULTS, MODES

    assert {f for s in FAST for f in s.faults} == set(FAULTS)
    assert set(BROKER_FAULTS) <= set(FAST_REAL_BROKERS.faults)
    assert {s.mode for s in FAST} == set(MODES) and {s.backend for s in FAST} == set(BACKENDS)
    assert {(s.mode, s.backend, s.assignor) for s in LONG} == {
        (m, b, a) for m in MODES for b in BACKENDS for a in ASSIGNORS}
    assert all(s.faults.count("kill") >= 3 and s.records >= 100_000 for s in LONG)
    assert any(s.early for s in FAST) and sum(s.early for s in LONG) >= 6
