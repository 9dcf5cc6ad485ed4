"""`Pipeline`: one pipeline under test (topic, table, name, replicas), on the services
of connector/embedded/services.py. Shared by the pytest fixtures (conftest.py) and the
chaos runner's command line (tests/chaos/runner.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.embedded.harness import FAST_GROUP, ConnectorProcess, ContainerReplica, produce, wait_until
from connector.embedded.services import Services
from connector.environment import CLASSIC_ONLY


def fast_group(protocol: str = "classic") -> dict[str, str]:
    """FAST_GROUP for the group protocol `protocol` (KAFKA_GROUP_PROTOCOL): under the
    consumer protocol (KIP-848) the broker sets session and heartbeat."""
    if protocol == "classic":
        return FAST_GROUP
    refused = {"KAFKA_" + key.upper().replace(".", "_") for key in CLASSIC_ONLY}
    return {k: v for k, v in FAST_GROUP.items() if k not in refused}


def new_pipeline(services: Services, workdir: Path, ddl: str, partitions: int = 4) -> Pipeline:
    """A fresh topic, table (`ddl` uses {table}) and pipeline name."""
    suffix = uuid.uuid4().hex[:10]
    pipeline = Pipeline(services, workdir, f"test-{suffix}", f"topic_{suffix}", f"sink_{suffix}", partitions)
    services.create_topic(pipeline.topic, partitions)
    services.sql(ddl.format(table=pipeline.table))
    return pipeline


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
            "STATE_DIR": str(self.workdir / f"state-{host}"), "LOG_LEVEL": "INFO", "HTTP_PORT": "0",
            **fast_group(overrides.get("KAFKA_GROUP_PROTOCOL", "classic")), **overrides,
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

    def cli(self, args: Sequence[str], **overrides: str) -> subprocess.CompletedProcess[str]:
        """`eos-connector <args>` run locally with the pipeline's environment."""
        return subprocess.run([sys.executable, "-m", "connector", *args], env={**os.environ, **self.env(**overrides)},
                              capture_output=True, text=True, timeout=120)

    def run_in_process(self, settings: Any, timeout_s: float = 60) -> tuple[Any, int | None]:
        """A replica of this pipeline run in this process until its offsets reach the
        watermarks, then stopped: the runner (for its metrics) and its exit code."""
        from connector.runtime.build import runner_from_settings

        stop = threading.Event()
        runner = runner_from_settings(settings, stop)
        exit_code: list[int] = []
        thread = threading.Thread(target=lambda: exit_code.append(runner.run()), daemon=True)
        thread.start()
        try:
            wait_until(lambda: not thread.is_alive() or self.offsets() == self.watermarks(), timeout_s,
                       "all offsets committed")
        finally:
            stop.set()
            thread.join(30)
        return runner, exit_code[0] if exit_code else None

    def produce(self, messages: Sequence[tuple[bytes | None, bytes | None]], partition_of: Any = None,
                producer: Any = None) -> None:
        produce(self.services.bootstrap_servers, self.topic, messages, partition_of, producer)

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

    def wait_caught_up(self, replica: ConnectorProcess, offsets: dict[int, int] | None = None,
                       timeout_s: float = 60) -> None:
        """Wait until `replica` is assigned and has committed up to `offsets` (default:
        the watermarks); raise with its output if it exits meanwhile."""
        wait_until(lambda: replica.check_alive() or "assigned" in replica.output(), timeout_s, "assignment")
        wait_until(lambda: replica.check_alive() or self.offsets() == (offsets or self.watermarks()), timeout_s,
                   "all offsets committed")

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
        """Per partition the high watermark."""
        return self._watermark(1)

    def log_starts(self) -> dict[int, int]:
        """Per partition the low watermark: the first offset the broker still holds."""
        return self._watermark(0)

    def _watermark(self, index: int) -> dict[int, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.services.bootstrap_servers, "group.id": "watermarks"})
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), 10)[index]
                    for p in range(self.partitions)}
        finally:
            consumer.close()

    def read_topic(self) -> list[tuple[bytes | None, bytes | None]]:
        """Every record the topic holds, (key, value) in partition order: what the table
        must reflect exactly once (the source of truth, whatever the producer meant to send)."""
        from confluent_kafka import Consumer, TopicPartition

        high = self.watermarks()
        consumer = Consumer({"bootstrap.servers": self.services.bootstrap_servers, "group.id": "read-topic",
                             "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})
        by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in high if high[p]}
        last = {p: -1 for p in by_partition}
        try:
            consumer.assign([TopicPartition(self.topic, p, 0) for p in by_partition])
            while any(last[p] < high[p] - 1 for p in by_partition):
                for message in consumer.consume(10_000, 1):
                    if message.error() is None:
                        by_partition[message.partition()].append((message.key(), message.value()))
                        last[message.partition()] = message.offset()
        finally:
            consumer.close()
        return [record for p in sorted(by_partition) for record in by_partition[p]]

    def stop_all(self) -> None:
        for replica in self.replicas:
            replica.signal(signal.SIGCONT)
            if replica.alive():
                replica.kill()
            if isinstance(replica, ContainerReplica):
                replica.remove()


