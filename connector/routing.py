"""Routing: which topics a pipeline reads and which table each topic's records go to,
with each table's own settings. Pure: nothing here does I/O.

- `Subscription`: KAFKA_TOPICS (names) or KAFKA_TOPICS_REGEX (a pattern librdkafka
  subscribes to, so topics created later that match are read too).
- `Routes.table_for(topic)`: SINK_TABLE_MAP's entry for the topic, else SINK_TABLE with
  `${topic}` made a safe identifier (`.` and `-` become `_`), read as PostgreSQL reads
  a `[schema.]table` name in SQL (unquoted parts fold to lower case, "quoted" keep it).
- `Routes.config_for(topic)`: the table's settings: SINK_TABLE_<NAME>_<SETTING> where
  set, else the plain SINK_<SETTING> (`env_name` says what <NAME> is).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from connector.errors import RouteError
from connector.fields import EVERY_FIELD, FieldRules

MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
METADATA_FIELDS = ("topic", "partition", "offset", "timestamp", "headers")
TOPIC_PLACEHOLDER = "${topic}"
MODES = ("append", "upsert", "insert-ignore")
# SINK_TABLE_<NAME>_<SETTING>: a table's own value of SINK_<SETTING>.
PER_TABLE = re.compile(r"^SINK_TABLE_([A-Z0-9_]+?)_(MODE|KEY_COLUMNS|ADDITIVE_COLUMNS|METADATA_COLUMNS|VERSION_COLUMN)$")
_QUALIFIED_PART = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([^".]+))\s*(?:\.|$)')
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")  # what Kafka accepts as a topic name


def parse_qualified_name(text: str) -> tuple[str | None, str]:
    """`schema.table`, with PostgreSQL's rules: "quoted" parts keep case and may hold
    dots; unquoted parts are folded to lower case. Returns (schema or None, table)."""
    parts: list[str] = []
    pos = 0
    while pos < len(text):
        match = _QUALIFIED_PART.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot parse {text!r} as [schema.]table")
        quoted, bare = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else bare.lower())
        pos = match.end()
    if text.endswith(".") or not 1 <= len(parts) <= 2 or not all(p.strip() for p in parts):
        raise ValueError(f"expected [schema.]table, got {text!r}")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return tuple(value)


def metadata_columns(value: str) -> tuple[tuple[str, str], ...]:
    """SINK_METADATA_COLUMNS: `<field>[=<column>],…`."""
    pairs = []
    for item in csv(value):
        field_name, _, column = (part.strip() for part in item.partition("="))
        if field_name not in METADATA_FIELDS:
            raise ValueError(f"unknown field {field_name!r}; expected <field>[=<column>] with field one of "
                             f"{', '.join(METADATA_FIELDS)}")
        pairs.append((field_name, column or field_name))
    return tuple(pairs)


def topics_regex(value: str | None) -> str | None:
    """KAFKA_TOPICS_REGEX, checked by Python's parser (librdkafka's takes the same
    common forms: classes, alternation, repetition)."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
    return value


def safe_identifier(topic: str) -> str:
    """A topic as `${topic}` puts it in a table name: `.` and `-` become `_`."""
    return topic.replace(".", "_").replace("-", "_")


def env_name(table: tuple[str | None, str]) -> str:
    """<NAME> in SINK_TABLE_<NAME>_*: the routed table's name (`schema.table` when the
    route names a schema), upper-cased, every character but A-Z and 0-9 made `_`."""
    return re.sub(r"[^A-Z0-9]", "_", ".".join(part for part in table if part).upper())


def shown(table: tuple[str | None, str]) -> str:
    return ".".join(part for part in table if part)


@dataclass(frozen=True)
class TableConfig:
    """What the settings say of one sink table (its route, SINK_MODE, SINK_KEY_COLUMNS,
    SINK_ADDITIVE_COLUMNS, SINK_METADATA_COLUMNS or their per-table forms)."""

    name: tuple[str | None, str]
    mode: str = "append"
    key_columns: tuple[str, ...] = ()
    additive_columns: tuple[str, ...] = ()
    metadata_columns: tuple[tuple[str, str], ...] = ()
    fields: FieldRules = EVERY_FIELD
    version_column: str | None = None

    @property
    def qualified(self) -> str:
        return shown(self.name)


@dataclass(frozen=True)
class Subscription:
    """The topics a pipeline reads: listed names, or every topic matching a pattern."""

    topics: tuple[str, ...] = ()
    regex: str | None = None

    def patterns(self) -> list[str]:
        """What the consumer subscribes to (librdkafka reads `^…` as a regular expression)."""
        return [self.regex if self.regex.startswith("^") else f"^{self.regex}"] if self.regex else list(self.topics)

    def __contains__(self, topic: object) -> bool:
        if self.regex is not None:
            return isinstance(topic, str) and re.match(self.patterns()[0], topic) is not None
        return topic in self.topics

    def __str__(self) -> str:
        return f"topics matching {self.patterns()[0]!r}" if self.regex else ", ".join(self.topics)


@dataclass(frozen=True)
class Routes:
    """SINK_TABLE (a name or a `${topic}` template), SINK_TABLE_MAP and each table's
    settings (`defaults` for every table, `per_table` by <NAME>)."""

    template: str | None
    table_map: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)
    defaults: TableConfig = TableConfig((None, "unrouted"))
    per_table: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def single(cls, config: TableConfig) -> Routes:
        """Every topic into one table."""
        return cls(_quoted(config.name), defaults=config)

    def table_for(self, topic: str) -> tuple[str | None, str]:
        """The table `topic`'s records go to; RouteError when none is named or the name
        does not fit PostgreSQL."""
        if topic in self.table_map:
            return self.table_map[topic]
        if self.template is None:
            raise RouteError(f"topic {topic!r} has no table: SINK_TABLE_MAP does not name it and SINK_TABLE is not set")
        text = self.template.replace(TOPIC_PLACEHOLDER, safe_identifier(topic))
        try:
            name = parse_qualified_name(text)
        except ValueError as exc:
            raise RouteError(f"topic {topic!r}: SINK_TABLE={self.template!r} makes {text!r}: {exc}") from exc
        too_long = _too_long(name)
        if too_long and TOPIC_PLACEHOLDER not in self.template:
            raise RouteError(f"SINK_TABLE: {too_long[:20]!r}… {LONGER}")
        if too_long:
            raise RouteError(f"topic {topic!r}: SINK_TABLE={self.template!r} makes the name {too_long!r}, longer "
                             f"than PostgreSQL's {MAX_IDENTIFIER_BYTES} bytes (route the topic in SINK_TABLE_MAP)")
        return name

    def config_for(self, topic: str) -> TableConfig:
        name = self.table_for(topic)
        return replace(self.defaults, name=name, **self.per_table.get(env_name(name), {}))

    @property
    def by_topic(self) -> bool:
        """Whether topics may go to different tables (a `${topic}` template or a map)."""
        return bool(self.table_map) or (self.template is not None and TOPIC_PLACEHOLDER in self.template)


LONGER = f"is longer than {MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it and address another name)"


def _too_long(name: tuple[str | None, str]) -> str | None:
    return next((part for part in name if part is not None and len(part.encode()) > MAX_IDENTIFIER_BYTES), None)


def _quoted(name: tuple[str | None, str]) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name if part is not None)


def table_map(value: str) -> dict[str, tuple[str | None, str]]:
    """SINK_TABLE_MAP: `topic=[schema.]table,…`."""
    routes: dict[str, tuple[str | None, str]] = {}
    for item in csv(value):
        topic, sep, table = (part.strip() for part in item.partition("="))
        if not sep or not topic or not table:
            raise ValueError(f"expected topic=[schema.]table, got {item!r}")
        if not _TOPIC_NAME.match(topic):
            raise ValueError(f"{topic!r} is not a Kafka topic name (letters, digits, '.', '_' and '-')")
        if topic in routes:
            raise ValueError(f"topic {topic!r} is routed twice")
        routes[topic] = parse_qualified_name(table)
        too_long = _too_long(routes[topic])
        if too_long:
            raise ValueError(f"{too_long[:20]!r}… {LONGER}")
    return routes


def per_table_settings(env: Mapping[str, str], problems: list[str]) -> dict[str, dict[str, Any]]:
    """Every SINK_TABLE_<NAME>_<SETTING> of `env`, parsed, by <NAME>; a value that does
    not parse is a problem naming its variable."""
    found: dict[str, dict[str, Any]] = {}
    for variable, value in sorted(env.items()):
        match = PER_TABLE.match(variable)
        if match is None:
            continue
        name, setting = match.groups()
        try:
            found.setdefault(name, {}).update(_per_table_value(setting, value))
        except ValueError as exc:
            problems.append(f"{variable}={value!r}: {exc}")
    return found


def _per_table_value(setting: str, value: str) -> dict[str, Any]:
    if setting == "MODE" and value.strip().lower() not in MODES:
        raise ValueError(f"expected one of {', '.join(map(repr, MODES))}")
    parse: Callable[[str], Any] = {"MODE": str.lower, "METADATA_COLUMNS": metadata_columns,
                                   "VERSION_COLUMN": _optional}.get(setting, csv)
    return {setting.lower(): parse(value.strip())}


def _optional(value: str) -> str | None:
    return value or None


def route_problems(subscription: Subscription | None, routes: Routes, deadletter_topic: str | None) -> list[str]:
    """What is wrong with the routes, as far as the settings alone tell: every listed
    topic must reach a table that fits PostgreSQL, every SINK_TABLE_MAP entry and every
    SINK_TABLE_<NAME>_* variable must apply to something, each table's settings agree
    (`subscription` None: the topics are not clear, only the last is checked)."""
    problems: list[str] = []
    if routes.template is not None:
        if re.search(r"\$\{(?!topic\})", routes.template):
            problems.append(f"SINK_TABLE={routes.template!r}: the only placeholder is {TOPIC_PLACEHOLDER}")
        try:
            parse_qualified_name(routes.template.replace(TOPIC_PLACEHOLDER, "t"))
        except ValueError as exc:
            problems.append(f"SINK_TABLE={routes.template!r}: {exc}")
    if routes.defaults.fields.include is not None and routes.defaults.fields.exclude:
        problems.append("SINK_FIELDS_INCLUDE and SINK_FIELDS_EXCLUDE are both set; give one")
    if subscription is not None:
        problems += [f"SINK_TABLE_MAP routes topic {topic!r}, which the pipeline does not read ({subscription})"
                     for topic in routes.table_map if topic not in subscription]
        if deadletter_topic is not None and deadletter_topic in subscription:
            problems.append(f"ERRORS_DEADLETTER_TOPIC {deadletter_topic!r} is one of the topics the pipeline "
                            "reads: it would read its own dead letters")
    if subscription is not None and subscription.regex is None and not problems:  # every table is known now
        configs = _tables(subscription.topics, routes, problems)
        problems += [f"{_variables(name, routes.per_table[name])}: the pipeline has no table whose <NAME> is "
                     f"{name} (its tables: {', '.join(sorted(configs)) or 'none'})"
                     for name in sorted(routes.per_table.keys() - configs.keys())]
    else:  # tables appear with topics (or the routes are broken): the defaults and every per-table form may apply
        configs = {"": routes.defaults, **{name: replace(routes.defaults, **values)
                                           for name, values in routes.per_table.items()}}
    problems += sorted({problem for name, config in configs.items()
                        for problem in _mode_problems(name, config, routes.per_table.get(name, {}))})
    return list(dict.fromkeys(problems))  # one table's problem once, however many topics it has


def _tables(topics: Sequence[str], routes: Routes, problems: list[str]) -> dict[str, TableConfig]:
    """Each table of `topics` by its <NAME>; a topic that has none adds a problem."""
    configs = {}
    for topic in topics:
        try:
            config = routes.config_for(topic)
        except RouteError as exc:
            problems.append(str(exc))
            continue
        configs[env_name(config.name)] = config
    return configs


def _variables(name: str, values: Mapping[str, Any]) -> str:
    return ", ".join(f"SINK_TABLE_{name}_{setting.upper()}" for setting in values)


def _mode_problems(name: str, config: TableConfig, own: Mapping[str, Any]) -> list[str]:
    """Key columns need upsert or insert-ignore mode, additive and version columns upsert
    (naming the variables that set them)."""
    def variable(setting: str) -> str:
        return f"SINK_TABLE_{name}_{setting.upper()}" if setting in own else f"SINK_{setting.upper()}"
    problems = []
    if config.key_columns and config.mode == "append":
        problems.append(f"{variable('key_columns')} is set but {variable('mode')} is 'append' (keys are for "
                        "'upsert' and 'insert-ignore')")
    for setting in ("additive_columns", "version_column"):
        if getattr(config, setting) and config.mode != "upsert":
            problems.append(f"{variable(setting)} is set but {variable('mode')} is not 'upsert'")
    if config.version_column and config.additive_columns:
        problems.append(f"{variable('version_column')} and {variable('additive_columns')} are both set (a newer "
                        "version replaces a row; an increment adds to it)")
    return problems
