"""A real Apache Kafka cluster on loopback: KRaft nodes as local JVM processes.

The broker comes from Maven Central (docker/kafka/pom.xml pins the version), copied once
into a cache outside the work tree (`EOS_KAFKA_CACHE`, default ~/.cache/eos-connector).
`ApacheKafka(nodes=3)` formats storage and starts `nodes` combined broker+controller
nodes with replicated internal topics (`default.replication.factor=3`,
`min.insync.replicas=2`, the transaction state log on every node), and waits until every
broker answers metadata. Topics are created through the AdminClient.

Faults, each on the real process: `kill` (SIGKILL) and `restart` a node, `pause`
(SIGSTOP) and `resume` it, `rolling_restart`, `heal` (whatever is down, back up), and the
nodes to aim them at:
`leader(topic, partition)`, `group_coordinator(group)`, `active_controller()`.

Group and cleaner timings are shortened so faults resolve in seconds (see
`TEST_SETTINGS`); everything else is Kafka's default. `python -m connector.embedded.apache`
resolves the jars and, with `--serve`, runs a cluster until interrupted.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connector.embedded.harness import free_port
from connector.embedded.kafka_node import KafkaUnavailable, Node, java, kafka_libs, log4j_config

TEST_SETTINGS = {
    "default.replication.factor": "3", "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3", "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2",
    "transaction.state.log.num.partitions": "10",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",  # the tests' replicas use 3 s sessions
    # The consumer group protocol (KIP-848): the broker owns session and heartbeat.
    "group.consumer.min.session.timeout.ms": "3000", "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "300", "group.consumer.heartbeat.interval.ms": "500",
    "log.cleaner.backoff.ms": "500", "log.retention.check.interval.ms": "1000",
    "log.segment.delete.delay.ms": "0", "log.initial.task.delay.ms": "0",
    "num.network.threads": "2", "num.io.threads": "4", "num.partitions": "1",
    "controller.quorum.election.timeout.ms": "1000", "controller.quorum.fetch.timeout.ms": "2000",
    "broker.session.timeout.ms": "4000", "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "5000",
}
def _admin(bootstrap_servers: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 2})


def _lists(bootstrap: str, brokers: set[int]) -> bool:
    """Whether the broker at `bootstrap` answers metadata naming all of `brokers`."""
    try:
        return brokers <= set(_admin(bootstrap).list_topics(timeout=2).brokers)
    except Exception:  # not answering yet
        return False


class ApacheKafka:
    """A KRaft cluster of `nodes` combined broker+controller nodes; `start()` (or `with`)."""

    supports_request_errors = False  # a real broker fails requests only for real reasons

    def __init__(self, nodes: int = 3, directory: str | None = None,
                 settings: Mapping[str, str] | None = None, node_type: type[Node] = Node) -> None:
        self._owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="eos-kafka-"))
        self.settings = {**TEST_SETTINGS, **(settings or {})}
        self.nodes = {i: node_type(i, self.directory / f"node-{i}", free_port(), free_port())
                      for i in range(1, nodes + 1)}
        self.bootstrap_servers = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes.values())
        self._libs: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 120) -> ApacheKafka:
        libs = self._libs = kafka_libs()
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes.values())
        cluster_id = new_cluster_id()
        for node in self.nodes.values():
            node.prepare(libs, voters, self.settings, cluster_id)
        for node in self.nodes.values():
            node.start(libs)
        try:
            self.wait_for_brokers(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes.values():  # every node shuts down at once; then each is waited for
            node.signal(signal.SIGCONT)
            node.signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.stop(20)
            node.remove()
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_brokers(self, timeout_s: float = 120) -> None:
        """Until each live node answers metadata on its own port, listing every live node."""
        deadline = time.monotonic() + timeout_s
        live = [n for n in self.nodes.values() if n.alive()]
        while not all(_lists(f"127.0.0.1:{n.port}", {m.node_id for m in live}) for n in live):
            for node in live:
                if not node.alive():
                    raise KafkaUnavailable(f"Kafka node {node.node_id} exited: {self.tail(node.node_id)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka nodes {[n.node_id for n in live]} not all up after {timeout_s:.0f}s")
            time.sleep(0.3)

    def tail(self, node_id: int, lines: int = 30) -> str:
        return "\n".join(self.nodes[node_id].output().splitlines()[-lines:])

    # -- topics ------------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int) -> None:
        """A topic (replication: the broker default, 3), waited for until every partition
        has a leader. Topic settings: `configure_topic`."""
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]  # exported, not in __all__

        admin = _admin(self.bootstrap_servers)
        futures = admin.create_topics([NewTopic(name, partitions)])
        futures[name].result(60)
        deadline = time.monotonic() + 60
        while True:
            topic = admin.list_topics(name, timeout=5).topics.get(name)
            if topic is not None and topic.error is None and len(topic.partitions) == partitions \
                    and all(p.leader >= 0 for p in topic.partitions.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name!r} has no leader for every partition after 60 s")
            time.sleep(0.1)

    def configure_topic(self, name: str, settings: Mapping[str, str]) -> None:
        """Set topic-level configuration (cleanup.policy, retention.ms, segment.ms, ...)."""
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType  # type: ignore[attr-defined]  # exported, not in __all__

        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in settings.items()]
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
        admin = _admin(self.bootstrap_servers)  # alive until the futures resolve
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    # -- where to aim a fault ----------------------------------------------------------------------
    def leader(self, topic: str, partition: int) -> int:
        metadata = _admin(self.bootstrap_servers).list_topics(topic, timeout=10)
        return int(metadata.topics[topic].partitions[partition].leader)

    def group_coordinator(self, group: str) -> int:
        admin = _admin(self.bootstrap_servers)  # alive until the future resolves
        description = admin.describe_consumer_groups([group])[group].result(10)
        return int(description.coordinator.id)

    def active_controller(self) -> int:
        """The KRaft quorum's leader, as the metadata quorum tool reports it."""
        assert self._libs is not None, "start() first"
        done = subprocess.run(java(self._libs, "org.apache.kafka.tools.MetadataQuorumCommand",
                                    "--bootstrap-server", self.bootstrap_servers, "describe", "--status"),
                              capture_output=True, text=True, timeout=60)
        found = re.search(r"^LeaderId:\s+(\d+)", done.stdout, re.M)
        if found is None:
            raise RuntimeError(f"no quorum leader in: {done.stdout}{done.stderr}")
        return int(found.group(1))

    # -- faults --------------------------------------------------------------------------------------
    def kill(self, node_id: int) -> None:
        """SIGKILL the node's JVM: no controlled shutdown, no leadership hand-over."""
        self.nodes[node_id].kill()

    def restart(self, node_id: int, timeout_s: float = 120) -> None:
        """Start a stopped or killed node again (same ports and log directory) and wait
        until it is a registered broker."""
        self._start_dead([node_id])
        self.wait_for_brokers(timeout_s)

    def heal(self, timeout_s: float = 120) -> None:
        """Every node running and answering again, whatever faults were left: a test that
        fails between `kill` (or `pause`) and `restart` must not fail the tests after it.
        All are resumed and started before the wait: one node alone has no quorum."""
        for node_id in self.nodes:
            self.resume(node_id)
        self._start_dead(list(self.nodes))
        self.wait_for_brokers(timeout_s)

    def _start_dead(self, node_ids: list[int]) -> None:
        """Start each of the nodes that is not running (same ports and log directory)."""
        assert self._libs is not None, "start() first"
        for node_id in node_ids:
            if not self.nodes[node_id].alive():
                self.nodes[node_id].start(self._libs)

    def pause(self, node_id: int) -> None:
        """SIGSTOP: the JVM stops answering, its sessions expire; `resume` continues it."""
        self.nodes[node_id].signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.nodes[node_id].signal(signal.SIGCONT)

    def rolling_restart(self) -> None:
        """Each node in turn: controlled shutdown, start, wait until it is back."""
        for node_id, node in self.nodes.items():
            node.stop()
            self.restart(node_id)

    # The chaos runner's and the container control API's names for a bounce.
    broker_down = kill
    broker_up = restart

    def inject_errors(self, api: str, errors: list[int]) -> None:
        raise NotImplementedError("Apache Kafka has no request-error injection")


def new_cluster_id() -> str:
    """A KRaft cluster ID: 16 random bytes, base64url without padding (22 characters),
    never starting with `-` (the storage tool would read it as an option, as Kafka's own
    Uuid.randomUuid avoids too)."""
    import base64

    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m connector.embedded.apache", description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help="start a cluster and run until interrupted "
                                                              "(else: resolve the jars and print their directory)")
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    libs = kafka_libs()
    log4j_config(libs)
    print(libs, flush=True)
    if args.serve:
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops the cluster as Ctrl-C does
        with ApacheKafka(args.nodes) as kafka:
            print(f"bootstrap.servers={kafka.bootstrap_servers}", flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    main()
