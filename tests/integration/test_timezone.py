"""SINK_TIMEZONE through a real pipeline: a timestamp written without an offset is the
zone's wall time, whether the fast path or the general path maps it, in `timestamptz`
(PostgreSQL reads it under the transaction's TimeZone) and in `timestamp` columns."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (id bigint, at timestamptz, local timestamp, note text)"


def test_timestamps_without_an_offset_are_the_zones(make_pipeline):
    p = make_pipeline(DDL, partitions=1)
    docs = [{"id": 1, "at": "2026-01-15T09:30:00", "local": "2026-01-15T09:30:00+01:00"},  # winter: UTC-5
            {"id": 2, "at": "2026-07-01 09:30:00.25", "local": "2026-07-01T13:30:00Z"},  # summer: UTC-4
            {"id": 3, "at": "2026-01-15T09:30:00Z", "local": 1768487400000},  # an instant: as it says
            {"id": 4, "at": "2026-01-15T09:30:00", "local": "2026-01-15T09:30:00", "extra": {"x": [1]}}]
    p.produce([(None, orjson.dumps(doc)) for doc in docs])
    replica = p.start(SINK_TIMEZONE="America/New_York")
    p.wait_for_rows(len(docs), 60, replica)
    assert replica.stop() == 0
    rows = p.services.sql(f"SELECT id, at, local FROM {p.table} ORDER BY id")
    assert [(i, at.astimezone(UTC), local) for i, at, local in rows] == [
        (1, datetime(2026, 1, 15, 14, 30, tzinfo=UTC), datetime(2026, 1, 15, 3, 30)),
        (2, datetime(2026, 7, 1, 13, 30, 0, 250000, tzinfo=UTC), datetime(2026, 7, 1, 9, 30)),
        (3, datetime(2026, 1, 15, 9, 30, tzinfo=UTC), datetime(2026, 1, 15, 9, 30)),
        (4, datetime(2026, 1, 15, 14, 30, tzinfo=UTC), datetime(2026, 1, 15, 9, 30)),
    ]


def test_an_unknown_zone_is_a_settings_error(make_pipeline):
    p = make_pipeline(DDL, partitions=1)
    result = p.cli(["check"], SINK_TIMEZONE="Mars/Olympus_Mons")
    assert result.returncode != 0 and "SINK_TIMEZONE='Mars/Olympus_Mons': Value error, not a time zone" in result.stderr
