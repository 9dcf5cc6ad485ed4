"""Fixtures shared by the integration and chaos suites (services: tests/services.py).
Every test gets its own topic, table and pipeline name, so tests never share state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.embedded.apache import ApacheKafka
from connector.embedded.kafka_node import KafkaUnavailable
from connector.embedded.services import KafkaFaults, Services, real_kafka_beside, services_from_env
from tests.services import Pipeline, new_pipeline


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with services_from_env() as found:
        yield found


@pytest.fixture(scope="session")
def apache_services(services: Services) -> Iterator[Services]:
    """The same database beside a real Apache Kafka cluster (the suite's own Kafka when the
    backend is `apache`). Without Java or Maven the test skips, naming what is missing —
    except on CI (CI=true), where it fails: the guarantee is proven on real Kafka there."""
    try:
        with real_kafka_beside(services) as found:
            yield found
    except KafkaUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"real Apache Kafka is required on CI: {exc}")
        pytest.skip(f"needs real Apache Kafka: {exc}")


def _pipelines(services: Services, tmp_path: Path) -> Iterator[Any]:
    made: list[Pipeline] = []

    def make(ddl: str, partitions: int = 4) -> Pipeline:
        made.append(new_pipeline(services, tmp_path, ddl, partitions))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.stop_all()


@pytest.fixture
def make_pipeline(services: Services, tmp_path: Path) -> Iterator[Any]:
    """Factory: make_pipeline(ddl, partitions=4) -> Pipeline with a fresh topic and table.
    `ddl` uses {table} for the table name."""
    yield from _pipelines(services, tmp_path)


@pytest.fixture
def make_apache_pipeline(apache_services: Services, tmp_path: Path) -> Iterator[Any]:
    """make_pipeline on real Apache Kafka (topics replicated three ways)."""
    yield from _pipelines(apache_services, tmp_path)


@pytest.fixture
def apache(apache_services: Services) -> Iterator[ApacheKafka]:
    """The real cluster itself, for its faults (kill, pause, leader, coordinator...).
    Whatever a test leaves down, failed or not, is brought back up after it."""
    cluster = apache_services.kafka
    assert isinstance(cluster, ApacheKafka)
    yield cluster
    cluster.heal()


@pytest.fixture
def needs_mock_cluster(services: Services) -> KafkaFaults:
    if services.kafka is None:
        pytest.skip("needs the embedded Kafka-protocol cluster for fault injection")
    return services.kafka
