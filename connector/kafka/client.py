"""The Kafka client configurations beside the replica's consumer (`Settings.consumer_config`):
the dead-letter producer, and the short-lived clients of the operator's commands
(`status`, `offsets reset`), which read only the Kafka variables of the environment."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from connector.config import KAFKA_DEFAULTS, Settings
from connector.environment import kafka_passthrough, read_secret_files
from connector.errors import ConfigError


def producer_config(settings: Settings) -> dict[str, Any]:
    """The dead-letter producer: the pipeline's own client settings (security included),
    less the consumer tuning; idempotent, acknowledged by every in-sync replica."""
    config: dict[str, Any] = {k: v for k, v in settings.kafka.items() if k not in KAFKA_DEFAULTS}
    config.update({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": "true",
                   "acks": "all", "logger": logging.getLogger("librdkafka")})
    return config


def command_config(env: Mapping[str, str], pipeline: str) -> dict[str, Any] | None:
    """A command's client, reading the pipeline's group (KAFKA_GROUP_ID, else the
    pipeline's name) with the environment's KAFKA_* settings and secret files; None
    without KAFKA_BOOTSTRAP_SERVERS. ConfigError lists every problem."""
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        return None
    problems: list[str] = []
    kafka = kafka_passthrough(read_secret_files(env, problems), problems)
    if problems:
        raise ConfigError(problems)
    return {**kafka, "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": env.get("KAFKA_GROUP_ID") or pipeline, "enable.auto.commit": "false",
            "logger": logging.getLogger("librdkafka")}
