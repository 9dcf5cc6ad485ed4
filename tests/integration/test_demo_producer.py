"""The compose file's producer (`eos-connector demo-producer`) feeds a pipeline."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from connector.ops.demo import CREATE_TABLE

pytestmark = pytest.mark.integration


def test_demo_producer_feeds_a_pipeline(make_pipeline):
    p = make_pipeline(CREATE_TABLE.replace("CREATE TABLE visits", "CREATE TABLE {table}"), partitions=3)
    done = subprocess.run([sys.executable, "-m", "connector", "demo-producer", "--count", "300", "--rate", "1000"],
                          env={**os.environ, **p.env()}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"produced 300 visit events to '{p.topic}'" in done.stdout, done.stderr
    replica = p.start()
    p.wait_for_rows(300, 60, replica)
    assert replica.stop() == 0
    p.assert_exact(300)
