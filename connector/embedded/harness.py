"""Driving real `eos-connector run` processes against real services: shared by the demo
and the test suite. Nothing here fakes a service; it starts, kills and observes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

# Group timings that let a killed replica's partitions move within seconds.
FAST_GROUP = {
    "KAFKA_SESSION_TIMEOUT_MS": "3000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    "KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
}


def free_port() -> int:
    """A loopback TCP port free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_producer(bootstrap_servers: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True,
                     "linger.ms": 20, "acks": "all", "log_level": 4})  # warnings and worse


def produce(bootstrap_servers: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]],
            partition_of: Callable[[int], int] | None = None, producer: Producer | None = None) -> int:
    """Produce (key, value) pairs idempotently and wait until all are acknowledged
    (with `producer` if given: a steady producer reuses one)."""
    producer = producer or make_producer(bootstrap_servers)
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    count = 0
    for i, (key, value) in enumerate(messages):
        partition = -1 if partition_of is None else partition_of(i)  # -1: the partitioner decides
        while True:
            try:
                producer.produce(topic, value=value, key=key, partition=partition, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise RuntimeError(f"produce to {topic!r}: {remaining} undelivered, failures: {failures[:3]}")
    return count


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


class ConnectorProcess:
    """One `eos-connector run` replica as a child process, its output in a log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ConnectorProcess:
        with open(self.log_path, "ab") as log:  # the child holds its own descriptor of it
            self.proc = subprocess.Popen([sys.executable, "-m", "connector", "run"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def kill(self) -> int:
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait: the clean shutdown path. Waits first until the process has
        started (no program can handle a signal while its interpreter is still loading)."""
        wait_until(lambda: not self.alive() or "starting" in self.output(), 30, "the replica to start")
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def check_alive(self) -> bool:
        """Raise with the replica's last output when it exited on its own; else False
        (so it can lead an `or` in a wait condition)."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = "\n".join(self.output().splitlines()[-25:])
            raise RuntimeError(f"eos-connector run exited with {self.proc.returncode}:\n{tail}")
        return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ContainerReplica(ConnectorProcess):
    """One `eos-connector run` replica as a container of the connector image, on the
    host network, behind an init process (so the fault hook can SIGKILL the connector,
    which PID 1 could not do to itself). Exit codes follow Popen's convention: killed by
    signal N is -N."""

    def __init__(self, env: Mapping[str, str], log_path: Path, image: str, mounts: list[str]) -> None:
        super().__init__(env, log_path)
        self.env = dict(env)
        self.image, self.mounts = image, mounts
        self.container: Any = None

    def start(self) -> ContainerReplica:
        import docker

        client = docker.from_env()  # type: ignore[attr-defined]  # mypy finds the repository's docker/ folder first
        self.container = client.containers.run(
            self.image, ["run"], environment=self.env, network_mode="host", init=True, detach=True,
            volumes={m: {"bind": m, "mode": "rw"} for m in self.mounts})
        return self

    @property
    def pid(self) -> int:
        """The connector's process ID on the host: the init process's child, waited for
        (a container just started may not have forked it yet)."""
        children: list[str] = []

        def forked() -> bool:
            self.container.reload()
            init_pid = self.container.attrs["State"]["Pid"]
            children[:] = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
            return bool(children)

        wait_until(forked, 30, "the container's init to start the connector", 0.02)
        return int(children[0])

    def alive(self) -> bool:
        if self.container is None:
            return False
        self.container.reload()
        return bool(self.container.status == "running")

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def wait(self, timeout_s: float) -> int:
        code = int(self.container.wait(timeout=timeout_s)["StatusCode"])
        self.log_path.write_text(self.output())
        return -(code - 128) if code > 128 else code

    def check_alive(self) -> bool:
        if self.container is not None and not self.alive():
            tail = "\n".join(self.output().splitlines()[-25:])
            raise RuntimeError(f"eos-connector container exited:\n{tail}")
        return False

    def output(self) -> str:
        if self.container is None:  # removed: its logs were kept in the log file
            return super().output()
        return str(self.container.logs().decode(errors="replace"))

    def remove(self) -> None:
        if self.container is not None:
            self.log_path.write_text(self.output())
            self.container.remove(force=True)
            self.container = None
