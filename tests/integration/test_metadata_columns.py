"""SINK_METADATA_COLUMNS end to end: each row carries its record's topic, partition,
offset, timestamp and headers; a column the table lacks is a clear error at start."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import Producer

pytestmark = pytest.mark.integration
DDL = ("CREATE TABLE {table} (id int NOT NULL, src text, part int, off bigint, at timestamptz, headers jsonb, "
       "PRIMARY KEY (src, part, off))")


def test_metadata_lands_with_each_row(make_pipeline):
    p = make_pipeline(DDL, partitions=2)
    producer = Producer({"bootstrap.servers": p.services.bootstrap_servers})
    for i in range(20):
        producer.produce(p.topic, orjson.dumps({"id": i}), partition=i % 2, timestamp=1763805600000 + i,
                         headers=[("n", str(i).encode()), ("kind", b"visit")])
    assert producer.flush(30) == 0
    replica = p.start(SINK_METADATA_COLUMNS="topic=src, partition=part, offset=off, timestamp=at, headers")
    p.wait_for_rows(20, 60, replica)
    assert replica.stop() == 0
    rows = p.rows("id, src, part, off, (extract(epoch from at) * 1000)::bigint, headers", "ORDER BY id")
    assert rows == [(i, p.topic, i % 2, i // 2, 1763805600000 + i, {"n": str(i), "kind": "visit"})
                    for i in range(20)]


def test_missing_metadata_column_is_a_clear_error(make_pipeline):
    p = make_pipeline("CREATE TABLE {table} (id int)")
    replica = p.start(SINK_METADATA_COLUMNS="offset=kafka_offset")
    assert replica.wait(30) == 1
    assert "SINK_METADATA_COLUMNS: table" in replica.output() and "no column 'kafka_offset' (for the record's offset)" \
        in replica.output()


def test_unknown_metadata_field_is_a_setting_error(make_pipeline):
    p = make_pipeline("CREATE TABLE {table} (id int)")
    replica = p.start(SINK_METADATA_COLUMNS="offset, key")
    assert replica.wait(30) == 2 and "unknown field 'key'" in replica.output()
