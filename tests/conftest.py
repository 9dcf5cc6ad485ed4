"""Fixtures shared by the integration and chaos suites (services: tests/services.py).
Every test gets its own topic, table and pipeline name, so tests never share state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import KafkaFaults, Pipeline, Services, new_pipeline, services_from_env


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with services_from_env() as found:
        yield found


@pytest.fixture
def make_pipeline(services: Services, tmp_path: Path) -> Iterator[Any]:
    """Factory: make_pipeline(ddl, partitions=4) -> Pipeline with a fresh topic and table.
    `ddl` uses {table} for the table name."""
    made: list[Pipeline] = []

    def make(ddl: str, partitions: int = 4) -> Pipeline:
        made.append(new_pipeline(services, tmp_path, ddl, partitions))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.stop_all()


@pytest.fixture
def needs_mock_cluster(services: Services) -> KafkaFaults:
    if services.kafka is None:
        pytest.skip("needs the embedded Kafka-protocol cluster for fault injection")
    return services.kafka
