"""The benchmark runs end to end on a small topic (no timing is asserted: its figures come
from `python -m benchmarks.bench` on an idle machine); every run it makes checks that
the table holds each record exactly once."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.integration


def test_the_benchmark_runs_and_every_run_is_exact(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "EOS_TEST_BACKEND"}
    env["CHECKPOINT_MAX_RECORDS"] = "500"  # the replicas' (they inherit it): every run has a rate to take medians of
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--kafka", "embedded", "--records", "3000",
                           "--partitions", "4", "--runs", "append/memory,upsert-stored/postgres", "--rounds", "2",
                           "--skip-floor",
                           "--stored-rows", "full", "--upsert-fillfactor", "70", "--keys",
                           "--latency-seconds", "2", "--latency-rate", "200", "--latency-intervals", "100",
                           "--latency-warmup-seconds", "1", "--backlog-records", "0", "--replicas", "2",
                           "--rebalance", "cooperative-sticky", "--rebalance-step-seconds", "2", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = orjson.loads(out.read_bytes())
    assert [(r["round"], r["mode"], r["backend"], r["exact"]) for r in results["connector"]] == [
        (1, "append", "memory", True), (1, "upsert-stored", "postgres", True),
        (2, "append", "memory", True), (2, "upsert-stored", "postgres", True)]
    assert (results["connector"][1]["stored_rows"], results["connector"][1]["fillfactor"]) == ("full", 70)
    # each kind's median over the rounds (of two runs: their mean), and against append/memory's
    rates = {(r["mode"], r["backend"]): [] for r in results["connector"]}
    for r in results["connector"]:
        rates[r["mode"], r["backend"]].append(r["rate"])
    memory, stored = sum(rates["append", "memory"]) / 2, sum(rates["upsert-stored", "postgres"]) / 2
    assert [(m["run"], m["rounds"]) for m in results["medians"]] == [("append/memory", 2), ("upsert-stored/postgres", 2)]
    assert [m["rate"] for m in results["medians"]] == pytest.approx([memory, stored])
    assert results["medians"][1]["ratio_to_append_memory"] == pytest.approx(stored / memory)
    assert results["medians"][0]["rate_max"] == max(rates["append", "memory"])
    assert results["keyed"] is True  # records keyed and spread by the producer's partitioner
    assert [r["replicas"] for r in results["scale_out"]] == [2]
    # scaling 1 -> 3 -> 1 under a steady rate: every record produced meanwhile exactly once
    assert [(r["protocol"], r["exact"]) for r in results["rebalance"]] == [("cooperative-sticky", True)]
    assert results["rebalance"][0]["records"] > 0
    # the steady-rate run, after its untimed warm-up: every record seen in the table
    warmup = results["latency_warmup"]
    assert (warmup["checkpoint_interval_ms"], warmup["records"], warmup["visible"]) == (100, 200, 200)
    assert [(r["checkpoint_interval_ms"], r["records"], r["visible"]) for r in results["latency"]] == [(100, 400, 400)]
