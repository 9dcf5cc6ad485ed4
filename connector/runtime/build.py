"""The real replica, built from the settings: Kafka source, PostgreSQL store, state
backend, dead-letter forwarder, health thresholds."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from connector.backends import build_backend
from connector.config import Settings
from connector.kafka.deadletters import Forwarder
from connector.kafka.source import KafkaSource
from connector.observability import Health, Metrics
from connector.protocol.checkpoint import CheckpointPolicy
from connector.protocol.faults import FaultHook
from connector.runtime.runner import Runner
from connector.runtime.worker import CommitWorker
from connector.sink.postgres import PostgresStore

log = logging.getLogger(__name__)


def replica_id() -> str:
    """Unique per incarnation: host and PID alone repeat across containers that share
    a host name (host networking), where every replica may run as the same PID."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def runner_from_settings(settings: Settings, stop: threading.Event | None = None) -> Runner:
    faults = FaultHook(settings.connector_fault)
    replica = replica_id()
    log.info("replica %s of pipeline %r", replica, settings.connector_name)
    metrics = Metrics()
    store = PostgresStore.from_settings(settings, replica, faults, lambda table, field:
                                        metrics.records.unknown_fields.labels(table, field).inc)
    policy = CheckpointPolicy(settings.checkpoint_interval_ms, settings.checkpoint_max_records,
                              settings.checkpoint_max_bytes)
    # Alive while the loop moves (a commit may take CHECKPOINT_TIMEOUT_MS, a retry wait
    # up to the strategy's maximum); ready while checkpoints keep completing.
    timeout_s, max_wait_s = settings.checkpoint_timeout_ms / 1000, settings.restart_strategy.max_ms / 1000
    health = Health(stuck_after_s=timeout_s + max_wait_s + 30,
                    stale_after_s=2 * settings.checkpoint_interval_ms / 1000 + timeout_s + 10)
    return Runner(KafkaSource.from_settings(settings), store, build_backend(settings, store, faults), policy,
                  faults, settings.shutdown_timeout_ms, stop, settings.restart_strategy, metrics, health,
                  settings.errors_tolerance == "all", Forwarder.from_settings(settings, replica),
                  # step 2 beside step 3's writes, for a backend that saves somewhere
                  saver=None if settings.state_backend == "memory" else CommitWorker())

