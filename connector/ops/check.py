"""`eos-connector check`: validate the settings and reach every service the pipeline
needs, without consuming a record or writing a row.

Checks, in order: the settings; Kafka (metadata through the pipeline's own consumer
configuration, so security settings are exercised; every topic exists, the dead-letter
topic too; with KAFKA_TOPICS_REGEX, the topics that match now); the Schema Registry when
VALUE_FORMAT needs one (it answers); the database (login, and for every table the
topics are routed to: it exists, every column mappable, upsert key and additive
columns); the bookkeeping schema's revision (informational: `run` creates or upgrades it).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from connector.config import Settings
from connector.environment import redact_url
from connector.errors import ConnectorError, KafkaError

KAFKA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def run_checks(settings: Settings) -> list[Check]:
    kafka, topics = check_kafka(settings)
    into = f"into {settings.sink_table!r}" if settings.sink_table else "into the tables of SINK_TABLE_MAP"
    return [Check("settings", True, f"pipeline {settings.connector_name!r} reading {settings.subscription}, "
                                    f"{settings.sink_mode} {into}, state backend {settings.state_backend}"),
            kafka, *check_registry(settings), *check_tables(settings, topics), check_bookkeeping(settings)]


def check_registry(settings: Settings) -> list[Check]:
    """With a registry VALUE_FORMAT: the Schema Registry answers (its subjects are listed)."""
    config = settings.registry_config()
    if config is None:
        return []
    from connector.formats import registry_client

    where = f"Schema Registry at {redact_url(config['url'])}"
    try:
        subjects = registry_client(config).get_subjects()
    except Exception as exc:  # HTTP, TLS and authentication errors of the registry client share no base class
        return [Check("schema registry", False, f"{where}: {type(exc).__name__}: {exc}")]
    return [Check("schema registry", True, f"{where}: {len(subjects)} subject(s); values read as {settings.value_format}")]


def check_kafka(settings: Settings) -> tuple[Check, list[str]]:
    """Metadata through the pipeline's own consumer configuration (security settings are
    exercised): every topic exists, the dead-letter topic too. Also the topics read (with
    KAFKA_TOPICS_REGEX, those matching now)."""
    from connector.kafka.admin import admin

    where = f"Kafka at {settings.kafka_bootstrap_servers}"
    problems: list[str] = []
    config = {**settings.consumer_config(), "error_cb": lambda error: problems.append(error.str())}
    dead_letter_topic = (settings.errors_deadletter_topic,) if settings.errors_deadletter_topic else ()
    topics = list(settings.subscription.topics)
    try:
        with admin(config, f"no metadata within {KAFKA_TIMEOUT_S:.0f}s", KAFKA_TIMEOUT_S) as kafka:
            topics = topics or kafka.topics(settings.subscription)
            found = kafka.partitions([*topics, *dead_letter_topic])
    except KafkaError as exc:
        seen = f" ({problems[-1]})" if problems else ""
        return Check("kafka", False, f"{where}: {exc}{seen}"), topics
    missing = [f"{topic!r} ({why})" for topic, why in found.items() if isinstance(why, str)]
    if missing:
        return Check("kafka", False, f"{where}: topic(s) not available: {', '.join(missing)}"), topics
    none = f"no topic matches {settings.subscription.patterns()[0]!r} yet; " if not topics else ""
    return Check("kafka", True, f"{where}: {none}" + ", ".join(f"{topic!r} ({len(partitions)} partitions)"
                                                             for topic, partitions in found.items())), topics


def check_tables(settings: Settings, topics: list[str]) -> list[Check]:
    """Every table `topics` are routed to fits the settings: read in a READ ONLY
    transaction (`check` writes nothing; START_FROM_SAVEPOINT is for `run` to apply)."""
    from connector.sink.catalog import Catalog, SchemaChanges

    where = f"database {redact_url(settings.libpq_url)}"
    catalog = Catalog(settings.routes(), settings.libpq_url, settings.connector_schema,
                      changes=SchemaChanges(settings.sink_auto_create, settings.sink_auto_evolve))
    if not topics and catalog.routes.by_topic:
        return [Check("database", True, f"{where}: no topic to route yet")]
    checks = []
    try:
        for topic in topics or [""]:
            try:
                target = catalog.target(topic)
            except ConnectorError as exc:
                checks.append(Check("database", False, f"{where}: {exc}"))
                continue
            keys = f", key ({', '.join(target.key_columns)})" if target.key_columns else ""
            as_text = [c.name for c in target.spec.columns if c.kind == "other"]
            note = f"; passed to PostgreSQL as text for it to cast: {', '.join(as_text)}" if as_text else ""
            source = f"topic {topic!r} -> " if topic else ""
            table = catalog.routes.config_for(topic).qualified  # as routed (unqualified: found by search_path)
            if not target.spec.columns:  # a table fitting the settings has one at least: this one is to make
                checks.append(Check("database", True, f"{where}: {source}table {table!r} does not exist yet: run "
                                                      f"makes it from its first record (SINK_AUTO_CREATE); {target.mode}"))
                continue
            checks.append(Check("database", True, f"{where}: {source}table {table!r} with "
                                                  f"{len(target.spec.columns)} mappable column(s){keys}{note}; "
                                                  f"{target.mode}"))
    finally:
        catalog.close()
    return checks


def check_bookkeeping(settings: Settings) -> Check:
    from connector.ops import migrate
    from connector.sink.connection import engine_for
    from connector.sink.sqlstate import convert_db_error

    schema = settings.connector_schema
    try:
        revision = migrate.current_revision(engine_for(settings.libpq_url), schema)
    except sa.exc.DBAPIError as exc:
        return Check("bookkeeping", False, str(convert_db_error(exc, f"reading schema {schema!r}")))
    if revision is None:
        action = "run will create it" if settings.connector_auto_migrate else \
            "CONNECTOR_AUTO_MIGRATE=false: run `eos-connector migrate` first"
        return Check("bookkeeping", settings.connector_auto_migrate, f"schema {schema!r} not created yet ({action})")
    return Check("bookkeeping", True, f"schema {schema!r} at revision {revision}")
