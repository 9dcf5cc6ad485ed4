"""The environment as the settings read it: secrets mounted as files, the Kafka client's
own settings (KAFKA_<NAME>), database URLs (as libpq takes them, checked as libpq would,
shown with passwords masked)."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path

from connector.redaction import MASK, remember, secrets_in

# Variables with their own meaning; every other KAFKA_* is passed to librdkafka.
KAFKA_RESERVED = frozenset({"KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPICS", "KAFKA_TOPICS_REGEX", "KAFKA_GROUP_ID"})
CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")
GROUP_PROTOCOLS = ("classic", "consumer")
START_OF_NEW_PARTITION = ("earliest", "smallest", "beginning", "latest", "largest", "end")
# librdkafka settings the connector must own for the protocol to hold.
KAFKA_FORCED = {"enable.auto.commit": "false", "enable.auto.offset.store": "false"}


def group_protocol(kafka: Mapping[str, str]) -> str:
    """The consumer group protocol the librdkafka settings `kafka` ask for."""
    return kafka.get("group.protocol", "classic").strip().lower()


def kafka_passthrough(env: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    config: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith("KAFKA_") or name in KAFKA_RESERVED:
            continue
        key = name[len("KAFKA_"):].lower().replace("_", ".")
        if not key:
            continue
        forced = KAFKA_FORCED.get(key)
        if forced is not None and value.strip().lower() != forced:
            problems.append(f"{name}={value!r}: the connector commits offsets itself; allowed: {forced}")
            continue
        config[key] = value
    reset = config.get("auto.offset.reset", "earliest").strip().lower()
    if reset not in START_OF_NEW_PARTITION:
        problems.append(f"KAFKA_AUTO_OFFSET_RESET={config['auto.offset.reset']!r}: where a partition with no "
                        f"offset starts; allowed: {', '.join(START_OF_NEW_PARTITION)} (records deleted before "
                        "they were read: ON_DATA_LOSS)")
    protocol = group_protocol(config)
    if protocol not in GROUP_PROTOCOLS:
        problems.append(f"KAFKA_GROUP_PROTOCOL={config['group.protocol']!r}: allowed: {', '.join(GROUP_PROTOCOLS)}")
    elif protocol == "consumer":
        problems.extend(f"KAFKA_{key.upper().replace('.', '_')}: not allowed with KAFKA_GROUP_PROTOCOL=consumer "
                        "(the broker sets it: group.consumer.* broker settings, or KAFKA_GROUP_REMOTE_ASSIGNOR)"
                        for key in CLASSIC_ONLY if key in config)
    return config


def redact_url(url: str) -> str:
    """The URL (or libpq key=value string) with every password (and sslpassword) replaced
    by ***; the rest is left as written. A password holding `/`, `?`, `#` or `@` unencoded
    masks everything up to the URL's last `@`."""
    url = re.sub(r"^([a-z][a-z0-9+.-]*://[^:@/?#]*:).*@", rf"\1{MASK}@", url, flags=re.I | re.S)
    url = re.sub(r"([?&](?:ssl)?password=)[^&#]*", rf"\1{MASK}", url, flags=re.I)
    return re.sub(r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", rf"\1{MASK}", url, flags=re.I)


def libpq_url(url: str, password: str | None = None) -> str:
    """DATABASE_URL as libpq takes it (`postgresql+psycopg://` becomes `postgresql://`),
    with DATABASE_PASSWORD (if given) added as a key=value connection string."""
    url = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)
    if password is None:
        return url
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, password=password)


def read_secret_files(env: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """The environment with every `DATABASE_PASSWORD_FILE` / `KAFKA_<NAME>_FILE` replaced
    by `DATABASE_PASSWORD` / `KAFKA_<NAME>` holding the file's content (secrets mounted
    as files; one trailing newline is dropped; a secret read is remembered for masking). A file that cannot be read is a problem
    naming the variable; setting both forms is one too."""
    resolved = dict(env)
    for name, path in env.items():
        target = name[: -len("_FILE")]
        if not name.endswith("_FILE") or not (target == "DATABASE_PASSWORD"
                                              or target.startswith(("KAFKA_", "SCHEMA_REGISTRY_"))):
            continue
        del resolved[name]
        if target in env:
            problems.append(f"{target} and {name} are both set; set only one")
            continue
        try:
            content = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            problems.append(f"{name}={path!r}: cannot read the file: {reason}")
            continue
        resolved[target] = content[:-1] if content.endswith("\n") else content
        remember(secrets_in({target: resolved[target]}))  # masked in all output from now on
    return resolved


# libpq options with a fixed set of values: a typo is a settings error, not a retried outage.
_LIBPQ_CHOICES = {"sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
                  "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
                  "gssencmode": ("disable", "prefer", "require"), "channel_binding": ("disable", "prefer", "require")}


def database_url_problems(url: str, password: str | None) -> list[str]:
    """DATABASE_URL's scheme, syntax and enumerated options, as libpq would refuse them."""
    shown = f"DATABASE_URL={redact_url(url)!r}"
    if not re.match(r"^postgres(ql)?(\+\w+)?://", url) and "=" not in url:
        return [f"{shown}: expected postgresql://… (or postgresql+psycopg://…, or a libpq key=value string)"]
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = conninfo_to_dict(libpq_url(url, password))
    except Error:  # libpq quotes the offending token, which may be the password: not shown
        return [f"{shown}: libpq cannot parse it (check the syntax, and that a password with reserved "
                "characters is percent-encoded)"]
    return [f"{shown}: {name}={options[name]!r} is not one of {', '.join(allowed)}"
            for name, allowed in _LIBPQ_CHOICES.items() if name in options and options[name] not in allowed]


def time_zone(value: str) -> str:
    """SINK_TIMEZONE: a zone of the IANA database."""
    try:
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ValueError("not a time zone of the IANA database (e.g. UTC, Europe/Paris, America/New_York)") from None
    return value


def registry_problems(formats: Mapping[str, str], url: str | None, registry: Mapping[str, str]) -> list[str]:
    """VALUE_FORMAT and KEY_FORMAT (`formats`, by variable) against SCHEMA_REGISTRY_URL
    and the other SCHEMA_REGISTRY_* settings (`registry`)."""
    problems = [f"{variable}={fmt!r} needs SCHEMA_REGISTRY_URL (http(s)://host:port; mock://name for the "
                "in-memory registry of tests)" for variable, fmt in formats.items() if fmt != "json" and not url]
    if all(fmt == "json" for fmt in formats.values()) and (url or registry):
        problems.append("SCHEMA_REGISTRY_* is set but VALUE_FORMAT and KEY_FORMAT are 'json' (set avro, "
                        "json-schema or protobuf)")
    if url and re.match(r"^[a-z][a-z0-9+.-]*://[^/?#]*@", url, re.I) and "basic.auth.user.info" in registry:
        problems.append("SCHEMA_REGISTRY_URL holds credentials and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO is set too; "
                        "give them one way")
    return problems
