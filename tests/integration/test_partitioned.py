"""Declarative partitioned tables as sinks: rows land in the partition their key says,
in append and upsert mode (the upsert key holds the partition key, as PostgreSQL's
unique constraints on a partitioned table must)."""

from __future__ import annotations

import orjson
import pytest

pytestmark = pytest.mark.integration
DDL = ("CREATE TABLE {table} (region text NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (region, id)) "
       "PARTITION BY LIST (region); "
       "CREATE TABLE {table}_eu PARTITION OF {table} FOR VALUES IN ('eu'); "
       "CREATE TABLE {table}_us PARTITION OF {table} FOR VALUES IN ('us'); "
       "CREATE TABLE {table}_rest PARTITION OF {table} DEFAULT")


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_rows_land_in_their_partitions(make_pipeline, mode):
    p = make_pipeline(DDL, partitions=2)
    regions = ["eu", "us", "apac"]
    docs = [{"region": regions[i % 3], "id": i, "note": f"«{i}» \"v1\""} for i in range(60)]
    if mode == "upsert":  # a later version of every key, in the same partition
        docs += [{**doc, "note": f"«{doc['id']}» \"v2\""} for doc in docs]
    p.produce([(str(d["id"]).encode(), orjson.dumps(d)) for d in docs], partition_of=lambda i: docs[i]["id"] % 2)
    replica = p.start(SINK_MODE=mode, CHECKPOINT_MAX_RECORDS="50")
    p.wait_caught_up(replica)
    assert replica.stop() == 0
    version = "v2" if mode == "upsert" else "v1"
    for region, part in (("eu", "eu"), ("us", "us"), ("apac", "rest")):
        rows = p.services.sql(f"SELECT id, note FROM {p.table}_{part} ORDER BY id")
        assert rows == [(i, f"«{i}» \"{version}\"") for i in range(60) if regions[i % 3] == region]
