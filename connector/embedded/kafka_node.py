"""One Apache Kafka KRaft node as a local JVM process, and the jars it runs: resolved
from Maven Central (docker/kafka/pom.xml pins the version) and copied once into a cache
outside the work tree (`EOS_KAFKA_CACHE`, default ~/.cache/eos-connector)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

KAFKA_VERSION = "4.1.1"  # as in docker/kafka/pom.xml
POM = Path(__file__).resolve().parents[2] / "docker" / "kafka" / "pom.xml"
HEAP = "-Xms256m -Xmx1g"  # three nodes on 2 cores and 24 GiB: 3 GiB at most
# Broker settings that make faults resolve in seconds (the rest is Kafka's default).


_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
"""


class KafkaUnavailable(RuntimeError):
    """Java or Maven is missing, or Maven Central did not serve the broker."""


def cache_dir() -> Path:
    """Named by the version and the pom's digest: a changed pom resolves afresh, never
    over the jars an older one copied."""
    root = Path(os.environ.get("EOS_KAFKA_CACHE") or Path.home() / ".cache" / "eos-connector")
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12] if POM.exists() else "no-pom"
    return root / f"kafka-{KAFKA_VERSION}-{digest}"


def kafka_libs() -> Path:
    """The directory of the broker's jars, resolved from Maven Central on first use."""
    libs = cache_dir() / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise KafkaUnavailable(f"Apache Kafka needs `{tool}` on PATH (Java 17 and Maven 3.8)")
    if not POM.exists():
        raise KafkaUnavailable(f"{POM} is missing: resolve the jars from a checkout of the project")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                           f"-DoutputDirectory={partial}"], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise KafkaUnavailable(f"mvn could not resolve Apache Kafka {KAFKA_VERSION} from {POM}:\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")
    partial.rename(libs)  # whole or not at all: a cut download is never mistaken for the jars
    return libs


def log4j_config(libs: Path) -> Path:
    """The Log4j 2 configuration the nodes log with (readable lines on stdout)."""
    config = libs.parent / "log4j2.yaml"
    if not config.exists():
        config.write_text(_LOG4J2)
    return config


def node_properties(node_id: int, port: int, controller_port: int, voters: str, log_dir: str,
                    settings: Mapping[str, str]) -> str:
    """One KRaft node's server.properties: broker and controller on loopback."""
    lines = {
        "process.roles": "broker,controller", "node.id": str(node_id), "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": log_dir, **settings,
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


class Node:
    """One KRaft node (broker and controller) as a local JVM process."""

    def __init__(self, node_id: int, directory: Path, port: int, controller_port: int) -> None:
        self.node_id, self.directory = node_id, directory
        self.port, self.controller_port = port, controller_port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def properties(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log(self) -> Path:
        return self.directory / "kafka.log"

    def prepare(self, libs: Path, voters: str, settings: Mapping[str, str], cluster_id: str) -> None:
        """Write its configuration and format its storage (once)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(node_properties(self.node_id, self.port, self.controller_port, voters,
                                                   str(self.directory / "data"), settings))
        formatted = subprocess.run(java(libs, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                         "-c", str(self.properties), "--ignore-formatted"),
                                   capture_output=True, text=True, timeout=120)
        if formatted.returncode != 0:
            raise KafkaUnavailable(f"formatting node {self.node_id} failed: {formatted.stdout}{formatted.stderr}")

    def start(self, libs: Path) -> None:
        with open(self.log, "ab") as log:  # the child holds its own descriptor of it
            self.proc = subprocess.Popen(java(libs, "kafka.Kafka", str(self.properties)), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def remove(self) -> None:
        """Release what the stopped node holds beyond its directory (a process: nothing)."""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM: a controlled shutdown (leadership moves first); SIGKILL past the timeout."""
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


def java(libs: Path, main: str, *args: str) -> list[str]:
    log4j = log4j_config(libs)
    return ["java", *HEAP.split(), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*", main, *args]
