"""The benchmark's medians over rounds (benchmarks/runs.py): pure arithmetic on its runs."""

from __future__ import annotations

import pytest

from benchmarks.runs import medians


def run(mode: str, backend: str, rate: float) -> dict[str, object]:
    return {"mode": mode, "backend": backend, "rate": rate}


def test_each_kind_is_its_median_over_the_rounds_against_the_limit_and_append_memory():
    runs = [run("append", "memory", 500.0), run("append", "filesystem", 380.0),
            run("append", "memory", 400.0), run("append", "filesystem", 420.0),
            run("append", "memory", 600.0), run("append", "filesystem", 390.0)]
    assert medians(runs, 1000.0) == [
        {"run": "append/memory", "rounds": 3, "rate": 500.0, "rate_min": 400.0, "rate_max": 600.0,
         "ratio_to_bare_limit": 0.5},
        {"run": "append/filesystem", "rounds": 3, "rate": 390.0, "rate_min": 380.0, "rate_max": 420.0,
         "ratio_to_bare_limit": 0.39, "ratio_to_append_memory": pytest.approx(0.78)}]


def test_a_run_without_a_rate_is_left_out_and_without_append_memory_there_is_no_ratio_to_it():
    runs = [run("upsert", "memory", 200.0), run("upsert", "memory", float("nan")), run("upsert", "memory", 300.0)]
    assert medians(runs, 1000.0) == [{"run": "upsert/memory", "rounds": 2, "rate": 250.0, "rate_min": 200.0,
                                      "rate_max": 300.0, "ratio_to_bare_limit": 0.25}]
