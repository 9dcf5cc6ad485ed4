"""Several pipelines (different CONNECTOR_NAMEs) on one database and one topic, sharing
a STATE_DIR: each keeps its own offsets, checkpoints and snapshots, and each table ends
exact — also when one of them is killed mid-stream."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (event_id bigint NOT NULL, user_id text)"


@pytest.mark.parametrize("backend", ["filesystem", "postgres"])
def test_two_pipelines_one_topic(make_pipeline, backend):
    a = make_pipeline(DDL, partitions=4)
    b = dataclasses.replace(a, name=a.name + "-b", table=a.table + "_b", replicas=[])
    a.services.sql(DDL.format(table=b.table))
    n = 3000
    a.produce([(f"u{i % 7}".encode(), orjson.dumps({"event_id": i, "user_id": f"u{i % 7}"})) for i in range(n)])
    settings = {"STATE_BACKEND": backend, "CHECKPOINT_MAX_RECORDS": "200"}  # both on host "a": one STATE_DIR
    ra, rb = a.start(**settings), b.start(**settings)
    a.wait_for_rows(n // 3, 60, ra)
    ra.kill()
    ra = a.start(**settings)
    a.wait_for_rows(n, 60, ra)
    b.wait_for_rows(n, 60, rb)
    assert ra.stop() == 0 and rb.stop() == 0
    try:
        a.assert_exact(n)
        b.assert_exact(n)
        assert sum(a.offsets().values()) == n and sum(b.offsets().values()) == n
        ids_a = {c[0] for c in a.checkpoints()}
        ids_b = {c[0] for c in b.checkpoints()}
        assert ids_a and ids_b and not ids_a & ids_b  # one sequence, separate rows per pipeline
        assert sum(c[2]["records"] for c in a.checkpoints()) == n == sum(c[2]["records"] for c in b.checkpoints())
        pending = a.services.sql("SELECT count(*) FROM eos_connector.snapshots WHERE pipeline IN (%s, %s)",
                                 (a.name, b.name))
        assert pending == [(0,)]
    finally:
        b.stop_all()
