"""The services the integration and chaos suites and the benchmark run against.

Services are chosen by the environment (`services_from_env`):
- embedded (default): PostgreSQL from `pgserver` and the librdkafka mock cluster;
- containers (EOS_TEST_BACKEND=containers, a Docker-compatible engine at DOCKER_HOST):
  PostgreSQL and Kafka in containers, and every replica as a container of the connector
  image. Images: EOS_TEST_IMAGES=local (default; built by docker/podman-setup.sh: Apache
  Kafka as three KRaft node containers of docker/kafka/Dockerfile) or
  EOS_TEST_IMAGES=official (the official `postgres` and `apache/kafka` images, pulled from
  a registry; Kafka one KRaft node);
- apache (EOS_TEST_BACKEND=apache): PostgreSQL from `pgserver` and a real Apache Kafka
  KRaft cluster of three nodes as local JVMs (connector/embedded/apache.py; Java and
  Maven needed, the jars resolved from Maven Central on first use);
- external: TEST_DATABASE_URL and TEST_KAFKA_BOOTSTRAP_SERVERS point at real services
  (topics are created with the admin client; broker faults are not available).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from connector.embedded.apache import ApacheKafka
from connector.embedded.harness import free_port, wait_until
from connector.embedded.kafka import EmbeddedKafka
from connector.embedded.kafka_node import Node, node_properties
from connector.embedded.postgres import EmbeddedPostgres

CONNECTOR_IMAGE = os.environ.get("EOS_TEST_CONNECTOR_IMAGE", "localhost/eos-connector:test")
OFFICIAL = os.environ.get("EOS_TEST_IMAGES", "local") == "official"
POSTGRES_IMAGE = os.environ.get("EOS_TEST_POSTGRES_IMAGE", "postgres:15" if OFFICIAL else "localhost/eos-postgres:test")
KAFKA_IMAGE = os.environ.get("EOS_TEST_KAFKA_IMAGE", "apache/kafka:4.1.1")  # EOS_TEST_IMAGES=official
KAFKA_NODE_IMAGE = os.environ.get("EOS_TEST_KAFKA_NODE_IMAGE", "localhost/eos-kafka:test")  # local


class KafkaFaults(Protocol):
    """What fault injection a Kafka service offers (EmbeddedKafka, ApacheKafka, KafkaContainer)."""

    bootstrap_servers: str
    supports_request_errors: bool

    def create_topic(self, name: str, partitions: int) -> None: ...
    def broker_down(self, broker_id: int) -> None: ...
    def broker_up(self, broker_id: int) -> None: ...
    def inject_errors(self, api: str, errors: list[int]) -> None: ...


@dataclass
class Services:
    database_url: str
    bootstrap_servers: str
    kafka: KafkaFaults | None  # None for external Kafka: no fault injection
    replica_image: str | None = None  # replicas run as containers of this image
    restart_database: Callable[[], None] | None = None  # None: not ours to restart
    brokers: int = 3

    def create_topic(self, name: str, partitions: int) -> None:
        if self.kafka is not None:
            self.kafka.create_topic(name, partitions)
            return
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # not in __all__

        futures = AdminClient({"bootstrap.servers": self.bootstrap_servers}).create_topics(
            [NewTopic(name, partitions, 1)])
        futures[name].result(30)

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True, client_encoding="UTF8") as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    @contextlib.contextmanager
    def sql_transaction(self) -> Iterator[Callable[..., object]]:
        """Statements run in one transaction, committed when the block ends."""
        with psycopg.connect(self.database_url, client_encoding="UTF8") as conn:
            yield lambda query, params=(): conn.execute(query, params)

    def terminate_connector_sessions(self) -> int:
        """pg_terminate_backend on every session of the connector (by application_name)."""
        rows = self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'eos-connector' AND pid <> pg_backend_pid()")
        return len(rows)


@contextlib.contextmanager
def services_from_env(backend: str | None = None) -> Iterator[Services]:
    """The services `backend` names (default: EOS_TEST_BACKEND, else embedded)."""
    url, bootstrap = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    backend = backend or os.environ.get("EOS_TEST_BACKEND", "embedded")
    if url and bootstrap:
        yield Services(url, bootstrap, None)
    elif backend == "containers":
        with container_services() as services:
            yield services
    elif backend == "apache":
        with EmbeddedPostgres() as pg, ApacheKafka(nodes=3) as kafka:
            yield Services(pg.url, kafka.bootstrap_servers, kafka, restart_database=pg.restart)
    else:
        with EmbeddedPostgres() as pg, EmbeddedKafka(brokers=3) as kafka:
            yield Services(pg.url, kafka.bootstrap_servers, kafka, restart_database=pg.restart)


@contextlib.contextmanager
def real_kafka_beside(services: Services) -> Iterator[Services]:
    """`services` if its Kafka is Apache Kafka; else the same database beside a real
    Apache Kafka cluster started for the tests that only a real broker can answer.
    Without Java or Maven this raises KafkaUnavailable (the caller skips, or fails on CI)."""
    if isinstance(services.kafka, ApacheKafka):
        yield services
        return
    with ApacheKafka(nodes=3) as kafka:
        yield Services(services.database_url, kafka.bootstrap_servers, kafka,
                       restart_database=services.restart_database)


@contextlib.contextmanager
def container_services() -> Iterator[Services]:
    """PostgreSQL and Kafka as containers on the host network: the official images, or
    this project's local ones (PostgreSQL from Debian; the Kafka-protocol stand-in)."""
    from testcontainers.core.container import DockerContainer

    pg_port = free_port()
    # The official image and the local one both honour these two variables.
    postgres = DockerContainer(POSTGRES_IMAGE).with_env("PGPORT", str(pg_port)) \
        .with_env("POSTGRES_HOST_AUTH_METHOD", "trust").with_kwargs(network_mode="host")
    with postgres:
        url = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        wait_until(lambda: _answers(url), 90, "PostgreSQL in its container")

        def restart_database() -> None:
            postgres.get_wrapped_container().restart(timeout=10)
            wait_until(lambda: _answers(url), 60, "PostgreSQL to restart")

        if OFFICIAL:
            with official_kafka() as kafka:
                yield Services(url, kafka.bootstrap_servers, kafka, CONNECTOR_IMAGE, restart_database, brokers=1)
            return
        with ApacheKafka(nodes=3, node_type=NodeContainer) as cluster:
            yield Services(url, cluster.bootstrap_servers, cluster, CONNECTOR_IMAGE, restart_database)


class NodeContainer(Node):
    """A KRaft node of ApacheKafka as a container of the local Kafka image (Debian's JRE,
    the same jars) on the host network: the cluster's faults act on the container — a
    SIGKILL or SIGSTOP reaches its JVM, a restart starts the same container again with
    its log directory."""

    def __init__(self, node_id: int, directory: Path, port: int, controller_port: int) -> None:
        super().__init__(node_id, directory, port, controller_port)
        self.container: Any = None
        self._started = False

    def prepare(self, libs: Path, voters: str, settings: Mapping[str, str], cluster_id: str) -> None:
        from testcontainers.core.container import DockerContainer

        properties = node_properties(self.node_id, self.port, self.controller_port, voters, "/var/lib/kafka", settings)
        self.container = DockerContainer(KAFKA_NODE_IMAGE).with_kwargs(network_mode="host") \
            .with_env("KAFKA_PROPERTIES", properties).with_env("CLUSTER_ID", cluster_id)

    def start(self, libs: Path) -> None:
        if self._started:
            self.container.get_wrapped_container().start()
        else:
            self.container.start()
            self._started = True

    def _state(self) -> dict[str, Any]:
        if not self._started:
            return {}
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return dict(wrapped.attrs["State"])

    def alive(self) -> bool:
        return bool(self._state().get("Running"))

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            self.container.get_wrapped_container().kill(signal=sig.name)

    def kill(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        wait_until(lambda: not self.alive(), 30, f"Kafka node {self.node_id}'s container to die")

    def stop(self, timeout_s: float = 30) -> None:
        if self.alive():
            self.signal(signal.SIGCONT)
            self.container.get_wrapped_container().stop(timeout=int(timeout_s))

    def output(self) -> str:
        return self.container.get_wrapped_container().logs().decode(errors="replace") if self._started else ""

    def remove(self) -> None:
        if self._started:
            self.container.stop()  # and removes it
            self._started = False


class KafkaContainer:
    """The official Apache Kafka image, one KRaft node (broker and controller) on the host
    network. A broker bounce pauses and unpauses the container; the broker has no
    request-error injection, so scenarios that need it are skipped."""

    supports_request_errors = False

    def __init__(self) -> None:
        from testcontainers.core.container import DockerContainer

        port, controller = free_port(), free_port()
        self.bootstrap_servers = f"127.0.0.1:{port}"
        env = {
            "KAFKA_NODE_ID": "1", "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller}",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        }
        self.container = DockerContainer(KAFKA_IMAGE).with_kwargs(network_mode="host")
        for name, value in env.items():
            self.container.with_env(name, value)

    def create_topic(self, name: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # not in __all__

        futures = AdminClient({"bootstrap.servers": self.bootstrap_servers}).create_topics(
            [NewTopic(name, partitions, 1)])
        futures[name].result(30)

    def broker_down(self, broker_id: int) -> None:
        self.container.get_wrapped_container().pause()

    def broker_up(self, broker_id: int) -> None:
        self.container.get_wrapped_container().unpause()

    def inject_errors(self, api: str, errors: list[int]) -> None:
        raise NotImplementedError("the Apache Kafka broker has no request-error injection")

    def answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=2)
            return True
        except Exception:
            return False


@contextlib.contextmanager
def official_kafka() -> Iterator[KafkaFaults]:
    kafka = KafkaContainer()
    with kafka.container:
        wait_until(kafka.answers, 120, "Apache Kafka in its container")
        yield kafka


def _answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False
