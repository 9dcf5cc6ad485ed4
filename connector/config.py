"""Settings from the environment: validated once, frozen, secrets redacted.

`Settings.from_env(mapping)` reads every variable, reports *all* problems in one
`ConfigError` (variable name, offending value with secrets masked, what is allowed),
and returns an immutable object. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connector.environment import (
    CLASSIC_ONLY,
    KAFKA_FORCED,
    database_url_problems,
    group_protocol,
    kafka_passthrough,
    libpq_url,
    read_secret_files,
    redact_url,
    registry_problems,
    time_zone,
)
from connector.errors import ConfigError
from connector.fields import FieldRules, renames
from connector.protocol.faults import FaultSpec
from connector.redaction import MASK, is_secret_name
from connector.routing import (
    LONGER,
    MAX_IDENTIFIER_BYTES,
    Routes,
    Subscription,
    TableConfig,
    csv,
    metadata_columns,
    per_table_settings,
    route_problems,
    table_map,
    topics_regex,
)
from connector.runtime.retry import RestartStrategy

KAFKA_DEFAULTS = {
    "auto.offset.reset": "earliest",  # a new pipeline must not skip data
    "isolation.level": "read_committed",
    "session.timeout.ms": "10000",  # a crashed replica's partitions move in 10 s, not 45
    # A member learns of a rebalance at its next heartbeat: at librdkafka's 3 s a partition
    # moved by a join or a leave waited 3.1-4.1 s between its two owners' commits, 1.2 at 1 s.
    "heartbeat.interval.ms": "1000",
    "fetch.queue.backoff.ms": "10",  # see DESIGN.md: the default leaves a backlog idle
    # A broker that does not answer a waiting fetch early (the embedded cluster) adds up to
    # this to every record's latency; a real one answers at the first byte, so lower only
    # costs idle fetch requests. Measured: p99 produce->visible 1.59 s at 500, 1.09 s at 50.
    "fetch.wait.max.ms": "50",
    "queued.min.messages": "1000000",
    # The pre-fetch queue's bound, which librdkafka also takes as fetch.max.bytes unless that
    # is set: its 64 MiB default, overshot by a 50 MiB fetch from each broker, let a replica
    # reach 870 MB on a backlog where 16 MiB held it at 470 MB, no slower (README, Performance).
    "queued.max.messages.kbytes": "16384",
}
# The next-generation consumer group protocol (KIP-848, `group.protocol=consumer`): the
# broker owns the session, the heartbeat and the assignor; librdkafka refuses these with it.
# KAFKA_AUTO_OFFSET_RESET: where a partition with no offset (database or group) starts.


class Settings(BaseModel):
    """Every setting of one replica. Build it with `Settings.from_env(os.environ)`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, hide_input_in_errors=True)

    kafka_bootstrap_servers: str = Field(alias="KAFKA_BOOTSTRAP_SERVERS", min_length=1)
    kafka_topics: tuple[str, ...] = Field((), alias="KAFKA_TOPICS")
    kafka_topics_regex: str | None = Field(None, alias="KAFKA_TOPICS_REGEX", min_length=1)
    database_url: str = Field(alias="DATABASE_URL", min_length=1, repr=False)
    database_password: str | None = Field(None, alias="DATABASE_PASSWORD", repr=False)
    sink_table: str | None = Field(None, alias="SINK_TABLE", min_length=1)
    sink_table_map: dict[str, tuple[str | None, str]] = Field(default_factory=dict, alias="SINK_TABLE_MAP")
    connector_name: str = Field("eos-connector", alias="CONNECTOR_NAME", min_length=1, max_length=200)
    kafka_group_id: str | None = Field(None, alias="KAFKA_GROUP_ID")
    sink_mode: Literal["append", "upsert", "insert-ignore"] = Field("append", alias="SINK_MODE")
    value_format: Literal["json", "avro", "json-schema", "protobuf"] = Field("json", alias="VALUE_FORMAT")
    key_format: Literal["json", "avro", "json-schema", "protobuf"] = Field("json", alias="KEY_FORMAT")
    schema_registry_url: str | None = Field(None, alias="SCHEMA_REGISTRY_URL", min_length=1, repr=False)
    sink_key_columns: tuple[str, ...] | None = Field(None, alias="SINK_KEY_COLUMNS")
    sink_additive_columns: tuple[str, ...] | None = Field(None, alias="SINK_ADDITIVE_COLUMNS")
    sink_metadata_columns: tuple[tuple[str, str], ...] = Field((), alias="SINK_METADATA_COLUMNS")
    sink_timezone: str = Field("UTC", alias="SINK_TIMEZONE", min_length=1)
    sink_version_column: str | None = Field(None, alias="SINK_VERSION_COLUMN", min_length=1)
    sink_fields_include: tuple[str, ...] | None = Field(None, alias="SINK_FIELDS_INCLUDE")
    sink_fields_exclude: tuple[str, ...] | None = Field(None, alias="SINK_FIELDS_EXCLUDE")
    sink_fields_rename: tuple[tuple[str, str], ...] = Field((), alias="SINK_FIELDS_RENAME")
    sink_flatten: bool = Field(False, alias="SINK_FLATTEN")
    sink_flatten_separator: str = Field("_", alias="SINK_FLATTEN_SEPARATOR", min_length=1)
    sink_auto_create: bool = Field(False, alias="SINK_AUTO_CREATE")
    sink_auto_evolve: bool = Field(False, alias="SINK_AUTO_EVOLVE")
    errors_tolerance: Literal["none", "all"] = Field("none", alias="ERRORS_TOLERANCE")
    errors_deadletter_topic: str | None = Field(None, alias="ERRORS_DEADLETTER_TOPIC", min_length=1)
    checkpoint_interval_ms: int = Field(1000, alias="CHECKPOINT_INTERVAL_MS", gt=0)
    checkpoint_max_records: int = Field(100_000, alias="CHECKPOINT_MAX_RECORDS", gt=0)
    checkpoint_max_bytes: int = Field(64 * 1024 * 1024, alias="CHECKPOINT_MAX_BYTES", gt=0)
    checkpoint_timeout_ms: int = Field(60_000, alias="CHECKPOINT_TIMEOUT_MS", gt=0)
    start_from_savepoint: str | None = Field(None, alias="START_FROM_SAVEPOINT", min_length=1)
    state_backend: Literal["memory", "filesystem", "postgres"] = Field("memory", alias="STATE_BACKEND")
    state_dir: str = Field("eos-connector-state", alias="STATE_DIR", min_length=1)
    shutdown_timeout_ms: int = Field(30_000, alias="SHUTDOWN_TIMEOUT_MS", gt=0)
    connector_schema: str = Field("eos_connector", alias="CONNECTOR_SCHEMA", min_length=1)
    connector_auto_migrate: bool = Field(True, alias="CONNECTOR_AUTO_MIGRATE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")
    log_format: Literal["text", "json"] = Field("text", alias="LOG_FORMAT")
    http_port: int = Field(8080, alias="HTTP_PORT", ge=0, le=65535)
    http_host: str = Field("0.0.0.0", alias="HTTP_HOST", min_length=1)
    restart_strategy: RestartStrategy = Field(RestartStrategy(), alias="RESTART_STRATEGY")
    on_data_loss: Literal["fail", "skip"] = Field("fail", alias="ON_DATA_LOSS")
    connector_fault: FaultSpec | None = Field(None, alias="CONNECTOR_FAULT")
    kafka: dict[str, str] = Field(default_factory=dict, repr=False)
    schema_registry: dict[str, str] = Field(default_factory=dict, repr=False)  # SCHEMA_REGISTRY_<NAME>
    sink_tables: dict[str, dict[str, Any]] = Field(default_factory=dict)  # SINK_TABLE_<NAME>_<SETTING>

    _split_topics = field_validator("kafka_topics", mode="before")(csv)

    _check_regex = field_validator("kafka_topics_regex")(topics_regex)
    _check_zone = field_validator("sink_timezone")(time_zone)

    @field_validator("sink_table_map", mode="before")
    @classmethod
    def _table_map(cls, value: Any) -> Any:
        return table_map(value) if isinstance(value, str) else value

    _split_renames = field_validator("sink_fields_rename", mode="before")(renames)

    @field_validator("sink_key_columns", "sink_additive_columns", "sink_fields_include", "sink_fields_exclude",
                     mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return None if value is None or value == "" else csv(value)

    @field_validator("sink_metadata_columns", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        return metadata_columns(value) if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "errors_tolerance", "value_format", "key_format", "on_data_loss", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("connector_fault", mode="before")
    @classmethod
    def _fault(cls, value: Any) -> Any:
        return FaultSpec.parse(value) if isinstance(value, str) and value else None

    @field_validator("restart_strategy", mode="before")
    @classmethod
    def _restart(cls, value: Any) -> Any:
        return RestartStrategy.parse(value) if isinstance(value, str) else value

    @field_validator("connector_name", "kafka_group_id", "connector_schema")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must not contain control characters")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Validate every variable of `env`; raise ConfigError listing all problems: a
        variable that fails on its own does not hide the checks across the others."""
        problems: list[str] = []
        env = read_secret_files(env, problems)
        kafka = kafka_passthrough(env, problems)
        registry = {name[len("SCHEMA_REGISTRY_"):].lower().replace("_", "."): value for name, value in env.items()
                    if name.startswith("SCHEMA_REGISTRY_") and name != "SCHEMA_REGISTRY_URL"}
        known = {f.alias: env[f.alias] for f in cls.model_fields.values() if f.alias and f.alias in env}
        extra = {"kafka": kafka, "schema_registry": registry, "sink_tables": per_table_settings(env, problems)}
        failed: set[str] = set()
        try:
            settings = cls.model_validate({**known, **extra})
        except ValidationError as exc:
            problems.extend(_describe(error, env) for error in exc.errors())
            failed = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            # What did validate, with neutral stand-ins for the rest, for the checks across variables.
            rest = {name: value for name, value in known.items() if name not in failed}
            settings = cls.model_validate({**_STAND_INS, **rest, **extra})
        problems.extend(settings._cross_checks(skip=failed))
        if problems:
            raise ConfigError(problems)
        return settings

    def _cross_checks(self, skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
        """Problems across variables; a check reading a variable in `skip` (already
        reported as invalid) is left out."""
        problems = self._routing_problems(skip)
        names: dict[str, list[str]] = {
            "CONNECTOR_SCHEMA": [self.connector_schema], "SINK_KEY_COLUMNS": list(self.sink_key_columns or ()),
            "SINK_ADDITIVE_COLUMNS": list(self.sink_additive_columns or ()),
            "SINK_METADATA_COLUMNS": [column for _, column in self.sink_metadata_columns]}
        for variable, identifiers in names.items():
            for name in identifiers:
                if len(name.encode()) > MAX_IDENTIFIER_BYTES:
                    problems.append(f"{variable}: {name[:20]!r}… {LONGER}")
        if "DATABASE_URL" not in skip:
            problems.extend(database_url_problems(self.database_url, self.database_password))
        if skip.isdisjoint({"VALUE_FORMAT", "KEY_FORMAT", "SCHEMA_REGISTRY_URL"}):
            problems.extend(registry_problems({"VALUE_FORMAT": self.value_format, "KEY_FORMAT": self.key_format},
                                              self.schema_registry_url, self.schema_registry))
        if self.errors_deadletter_topic and self.errors_tolerance != "all" and "ERRORS_TOLERANCE" not in skip:
            problems.append("ERRORS_DEADLETTER_TOPIC is set but ERRORS_TOLERANCE is not 'all' (no record is "
                            "dead-lettered with 'none')")
        return problems

    def _routing_problems(self, skip: set[str]) -> list[str]:
        problems = []
        if self.kafka_topics and self.kafka_topics_regex:
            problems.append("KAFKA_TOPICS and KAFKA_TOPICS_REGEX are both set; give the topics one way")
        elif not self.kafka_topics and not self.kafka_topics_regex:
            problems.append("KAFKA_TOPICS is required but not set (or KAFKA_TOPICS_REGEX)")
        if self.sink_table is None and not self.sink_table_map:
            problems.append("SINK_TABLE is required but not set (or SINK_TABLE_MAP)")
        if not skip.isdisjoint({"SINK_TABLE", "SINK_TABLE_MAP", "KAFKA_TOPICS_REGEX", "SINK_MODE"}):
            return problems
        known = None if problems else self.subscription  # which topics the pipeline reads, if that is clear
        return problems + route_problems(known, self.routes(), self.errors_deadletter_topic)

    @property
    def group_id(self) -> str:
        return self.kafka_group_id or self.connector_name

    @property
    def subscription(self) -> Subscription:
        return Subscription(self.kafka_topics, self.kafka_topics_regex)

    def routes(self) -> Routes:
        fields = FieldRules(self.sink_fields_include, self.sink_fields_exclude or (), self.sink_fields_rename,
                            self.sink_flatten_separator if self.sink_flatten else None)
        defaults = TableConfig((None, ""), self.sink_mode, tuple(self.sink_key_columns or ()),
                               tuple(self.sink_additive_columns or ()), tuple(self.sink_metadata_columns), fields,
                               self.sink_version_column)
        return Routes(self.sink_table, self.sink_table_map, defaults, self.sink_tables)

    @property
    def libpq_url(self) -> str:
        return libpq_url(self.database_url, self.database_password)

    def consumer_config(self) -> dict[str, str]:
        """The librdkafka configuration of the replica's consumer (under the consumer group
        protocol, without the classic protocol's session default: the broker sets it)."""
        defaults = KAFKA_DEFAULTS if group_protocol(self.kafka) == "classic" else \
            {k: v for k, v in KAFKA_DEFAULTS.items() if k not in CLASSIC_ONLY}
        return {
            **defaults,
            **self.kafka,
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "group.id": self.group_id,
            **KAFKA_FORCED,
        }

    def registry_config(self) -> dict[str, str] | None:
        """The Schema Registry client's configuration, or None for VALUE_FORMAT=json."""
        if self.schema_registry_url is None:
            return None
        return {**self.schema_registry, "url": self.schema_registry_url}

    def redacted(self) -> dict[str, Any]:
        """Every setting as shown to people: secrets masked."""
        shown: dict[str, Any] = self.model_dump(exclude={"kafka", "database_url", "database_password",
                                                         "connector_fault", "restart_strategy", "schema_registry",
                                                         "schema_registry_url"})
        shown["schema_registry_url"] = self.schema_registry_url and redact_url(self.schema_registry_url)
        shown["schema_registry"] = {k: (MASK if is_secret_name(k) else v) for k, v in self.schema_registry.items()}
        shown["database_password"] = MASK if self.database_password is not None else None
        shown["restart_strategy"] = str(self.restart_strategy)
        shown["database_url"] = redact_url(self.database_url)
        shown["connector_fault"] = str(self.connector_fault) if self.connector_fault else None
        shown["kafka"] = {k: (MASK if is_secret_name(k) else v) for k, v in self.kafka.items()}
        return shown

    def __repr__(self) -> str:
        return f"Settings({self.redacted()!r})"

    __str__ = __repr__


# Values that pass validation, standing in for required variables that did not, so the
# checks across variables still run; checks reading them are skipped.
_STAND_INS = {"KAFKA_BOOTSTRAP_SERVERS": "unset", "DATABASE_URL": "postgresql://"}
def _describe(error: Any, env: Mapping[str, str]) -> str:
    loc = error["loc"][0] if error["loc"] else "?"
    if error["type"] == "missing":
        return f"{loc} is required but not set"
    value = env.get(str(loc), "")
    shown = redact_url(value) if loc in ("DATABASE_URL", "SCHEMA_REGISTRY_URL") else (MASK if is_secret_name(str(loc)) else value)
    return f"{loc}={shown!r}: {error['msg']}"
