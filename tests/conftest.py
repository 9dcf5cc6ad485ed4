"""Fixtures shared by the integration and chaos suites.

Services are chosen once per session:
- embedded (default): PostgreSQL from `pgserver` and the librdkafka mock cluster;
- containers (EOS_TEST_BACKEND=containers, a Docker-compatible engine at DOCKER_HOST):
  PostgreSQL and the Kafka-protocol stand-in in containers, and every replica as a
  container of the connector image (images from docker/, see docker/podman-setup.sh);
- external: set TEST_DATABASE_URL and TEST_KAFKA_BOOTSTRAP_SERVERS to point the suite at
  real services (topics are then created with the admin client; tests that need broker
  fault injection skip).
Every test gets its own topic, table and pipeline name, so tests never share state.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connector.embedded.harness import FAST_GROUP, ConnectorProcess, ContainerReplica, produce, wait_until
from connector.embedded.kafka import EmbeddedKafka
from connector.embedded.kafka_control import RemoteKafka
from connector.embedded.postgres import EmbeddedPostgres

CONNECTOR_IMAGE = os.environ.get("EOS_TEST_CONNECTOR_IMAGE", "localhost/eos-connector:test")
POSTGRES_IMAGE = os.environ.get("EOS_TEST_POSTGRES_IMAGE", "localhost/eos-postgres:test")


@dataclass
class Services:
    database_url: str
    bootstrap_servers: str
    kafka: EmbeddedKafka | RemoteKafka | None  # None for external Kafka: no fault injection
    replica_image: str | None = None  # replicas run as containers of this image

    def create_topic(self, name: str, partitions: int) -> None:
        if self.kafka is not None:
            self.kafka.create_topic(name, partitions)
            return
        from confluent_kafka.admin import AdminClient, NewTopic

        futures = AdminClient({"bootstrap.servers": self.bootstrap_servers}).create_topics(
            [NewTopic(name, partitions, 1)])
        futures[name].result(30)

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True, client_encoding="UTF8") as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    url, bootstrap = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if url and bootstrap:
        yield Services(url, bootstrap, None)
    elif os.environ.get("EOS_TEST_BACKEND") == "containers":
        yield from container_services()
    else:
        with EmbeddedPostgres() as pg, EmbeddedKafka(brokers=3) as kafka:
            yield Services(pg.url, kafka.bootstrap_servers, kafka)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def container_services() -> Iterator[Services]:
    """PostgreSQL and the Kafka-protocol stand-in as containers on the host network."""
    from testcontainers.core.container import DockerContainer

    pg_port, control_port = _free_port(), _free_port()
    postgres = DockerContainer(POSTGRES_IMAGE).with_env("PGPORT", str(pg_port)) \
        .with_kwargs(network_mode="host")
    kafka = DockerContainer(CONNECTOR_IMAGE).with_kwargs(
        network_mode="host", entrypoint=["python", "-m", "connector.embedded.kafka_control"]) \
        .with_command(f"--port {control_port} --brokers 3")
    with postgres, kafka:
        url = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        wait_until(lambda: _answers(url), 60, "PostgreSQL in its container")
        remote: list[RemoteKafka] = []
        wait_until(lambda: _control(f"http://127.0.0.1:{control_port}", remote), 60, "Kafka in its container")
        yield Services(url, remote[0].bootstrap_servers, remote[0], CONNECTOR_IMAGE)


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def _control(url: str, found: list[RemoteKafka]) -> bool:
    try:
        found.append(RemoteKafka(url))
        return True
    except OSError:
        return False


@dataclass
class Pipeline:
    """One pipeline under test: its topic, table, name and replicas."""

    services: Services
    workdir: Path
    name: str
    topic: str
    table: str
    partitions: int
    replicas: list[ConnectorProcess] = field(default_factory=list)

    def env(self, host: str = "a", **overrides: str) -> dict[str, str]:
        """The replica's environment; `host` names its local disk (STATE_DIR): a restart
        on the same host sees the same files, another host does not."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.services.bootstrap_servers, "KAFKA_TOPICS": self.topic,
            "DATABASE_URL": self.services.database_url, "SINK_TABLE": self.table,
            "CONNECTOR_NAME": self.name, "CHECKPOINT_INTERVAL_MS": "200",
            "STATE_DIR": str(self.workdir / f"state-{host}"), "LOG_LEVEL": "INFO", **FAST_GROUP, **overrides,
        }

    def start(self, host: str = "a", **overrides: str) -> ConnectorProcess:
        log = self.workdir / f"replica-{len(self.replicas)}.log"
        env = self.env(host, **overrides)
        replica: ConnectorProcess
        if self.services.replica_image:
            state_dir = Path(env["STATE_DIR"])
            state_dir.mkdir(parents=True, exist_ok=True)
            state_dir.chmod(0o777)  # the image runs as an unprivileged user
            replica = ContainerReplica(env, log, self.services.replica_image, [str(state_dir)]).start()
        else:
            replica = ConnectorProcess(env, log).start()
        self.replicas.append(replica)
        return replica

    def produce(self, messages: Sequence[tuple[bytes | None, bytes | None]], partition_of: Any = None) -> None:
        produce(self.services.bootstrap_servers, self.topic, messages, partition_of)

    def rows(self, columns: str = "*", order: str = "") -> list[tuple[Any, ...]]:
        return self.services.sql(f"SELECT {columns} FROM {self.table} {order}")

    def count(self) -> int:
        return int(self.services.sql(f"SELECT count(*) FROM {self.table}")[0][0])

    def wait_for_rows(self, n: int, timeout_s: float = 60, *alive: ConnectorProcess) -> None:
        def done() -> bool:
            for replica in alive:
                replica.check_alive()
            return self.count() >= n
        wait_until(done, timeout_s, f"{n} rows in {self.table}")

    def assert_exact(self, n: int) -> None:
        """The table's `event_id`s are exactly 0..n-1, each once: no loss, no duplicate."""
        ids = [r[0] for r in self.rows("event_id", "ORDER BY event_id")]
        assert len(ids) == n, f"{len(ids)} rows for {n} records ({len(ids) - len(set(ids))} duplicates)"
        assert ids == list(range(n)), "rows differ from the records produced"

    def offsets(self) -> dict[int, int | None]:
        rows = self.services.sql("SELECT partition, next_offset FROM eos_connector.offsets "
                                 "WHERE pipeline = %s AND topic = %s", (self.name, self.topic))
        return dict(rows)  # type: ignore[arg-type]

    def checkpoints(self) -> list[tuple[Any, ...]]:
        return self.services.sql("SELECT checkpoint_id, replica, counts, offsets FROM eos_connector.checkpoints "
                                 "WHERE pipeline = %s ORDER BY checkpoint_id", (self.name,))

    def watermarks(self) -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.services.bootstrap_servers, "group.id": "watermarks"})
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), 10)[1]
                    for p in range(self.partitions)}
        finally:
            consumer.close()

    def stop_all(self) -> None:
        for replica in self.replicas:
            replica.signal(signal.SIGCONT)
            if replica.alive():
                replica.kill()
            if isinstance(replica, ContainerReplica):
                replica.remove()


@pytest.fixture
def make_pipeline(services: Services, tmp_path: Path) -> Iterator[Any]:
    """Factory: make_pipeline(ddl, partitions=4) -> Pipeline with a fresh topic and table.
    `ddl` uses {table} for the table name."""
    made: list[Pipeline] = []

    def make(ddl: str, partitions: int = 4) -> Pipeline:
        suffix = uuid.uuid4().hex[:10]
        pipeline = Pipeline(services, tmp_path, f"test-{suffix}", f"topic_{suffix}", f"sink_{suffix}", partitions)
        services.create_topic(pipeline.topic, partitions)
        services.sql(ddl.format(table=pipeline.table))
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.stop_all()


@pytest.fixture
def needs_mock_cluster(services: Services) -> EmbeddedKafka:
    if services.kafka is None:
        pytest.skip("needs the embedded Kafka-protocol cluster for fault injection")
    return services.kafka
