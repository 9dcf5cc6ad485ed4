"""The operator's database commands: `status`, `savepoint`, `offsets reset` and
`deadletters`, from the environment (DATABASE_URL, CONNECTOR_SCHEMA, CONNECTOR_NAME,
and the Kafka variables where Kafka is read)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from connector.config import Settings
from connector.environment import libpq_url, read_secret_files
from connector.errors import ConfigError
from connector.logs import configure_logging


def settings_from(env: Mapping[str, str]) -> Settings:
    """Every setting, validated; logging configured from them."""
    settings = Settings.from_env(env)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def database_only(env: Mapping[str, str]) -> tuple[str, str, str]:
    """DATABASE_URL (with DATABASE_PASSWORD[_FILE]), CONNECTOR_SCHEMA and CONNECTOR_NAME
    alone, for the database commands."""
    problems: list[str] = []
    env = read_secret_files(env, problems)
    if not env.get("DATABASE_URL"):
        problems.append("DATABASE_URL is required but not set")
    if problems:
        raise ConfigError(problems)
    configure_logging(env.get("LOG_LEVEL", "INFO").upper(), env.get("LOG_FORMAT", "text").lower())
    return (libpq_url(env["DATABASE_URL"], env.get("DATABASE_PASSWORD")), env.get("CONNECTOR_SCHEMA", "eos_connector"),
            env.get("CONNECTOR_NAME", "eos-connector"))


def cmd_status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.kafka.client import command_config
    from connector.ops.status import kafka_positions, pipeline_status

    url, schema, pipeline = database_only(env)
    status = pipeline_status(url, schema, pipeline)
    config = command_config(env, pipeline)
    if config is not None:
        topics = [t.strip() for t in env.get("KAFKA_TOPICS", "").split(",") if t.strip()]
        kafka_positions(config, topics, status["partitions"])
    if args.json:
        print(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
    else:
        print(_format_status(status))
    return 0


def _format_status(status: dict[str, Any]) -> str:
    lines = [f"pipeline {status['pipeline']!r} (schema {status['schema']!r})"]
    last = status["last_checkpoint"]
    lines.append(f"last checkpoint: {last['checkpoint_id']} by {last['replica']}, {last['age_s']:.1f}s ago"
                 if last else "last checkpoint: none yet")
    lines.append(f"pending snapshots: {status['pending_snapshots']}")
    lines.append("replicas committing in the last hour: " + (", ".join(
        f"{r['replica']} ({r['checkpoints_last_hour']} checkpoints, last {r['last_commit_age_s']:.0f}s ago)"
        for r in status["replicas"]) or "none"))
    kafka = any("high_watermark" in p for p in status["partitions"])
    columns = ["topic", "partition", "next_offset"] + (["kafka_committed", "high_watermark", "lag"] if kafka else []) \
        + ["updated_by"]
    lines.append("\t".join(columns))
    lines.extend("\t".join("-" if p.get(c) is None else str(p.get(c)) for c in columns[:-1]) + f"\t{p['replica'] or '-'}"
                 for p in status["partitions"])
    return "\n".join(lines)


def _bookkeeping_engine(url: str, schema: str) -> Any:
    from connector import bookkeeping as bk
    from connector.sink.connection import engine_for

    return engine_for(url).execution_options(schema_translate_map=bk.translate(schema))


@contextlib.contextmanager
def _database_errors(doing: str) -> Iterator[None]:
    """Driver errors of a database command, as the project's own (named) errors."""
    import sqlalchemy as sa

    from connector.sink.sqlstate import convert_db_error

    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise convert_db_error(exc, doing) from exc


def cmd_savepoint(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.bookkeeping import positions
    from connector.ops import savepoints

    url, schema, pipeline = database_only(env)
    engine = _bookkeeping_engine(url, schema)
    with _database_errors(f"savepoint {args.action}"):
        if args.action == "list":
            with engine.connect() as conn:
                rows = positions.list_savepoints(conn)
            print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() if args.json else "\n".join(
                f"{r['name']}\t{r['pipeline']}\t{r['partitions']} partitions\t{r['created_at']}" for r in rows)
                or "no savepoints")
            return 0
        if not args.name:
            raise ConfigError(["savepoint create needs a NAME"])
        offsets = savepoints.create_savepoint(engine, pipeline, args.name, stop=args.stop, timeout_s=args.timeout)
    print(f"savepoint {args.name!r} of pipeline {pipeline!r}: {len(offsets)} partition(s)"
          + (" (replicas stopped)" if args.stop else ""))
    for (topic, partition), offset in sorted(offsets.items()):
        print(f"  {topic}[{partition}] next_offset {offset}")
    return 0


def cmd_offsets(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.bookkeeping import positions
    from connector.kafka.client import command_config
    from connector.ops import savepoints

    url, schema, pipeline = database_only(env)
    engine = _bookkeeping_engine(url, schema)
    topics = [t.strip() for t in env.get("KAFKA_TOPICS", "").split(",") if t.strip()]
    with _database_errors("resetting offsets"):
        if args.to.startswith("savepoint:"):
            with engine.connect() as conn:
                _, stored = positions.savepoint_offsets(conn, args.to.split(":", 1)[1])
            target = {tp: o for tp, o in stored.items() if not topics or tp[0] in topics}
        else:
            config = command_config(env, pipeline)
            if config is None or not topics:
                raise ConfigError([f"--to {args.to} needs KAFKA_BOOTSTRAP_SERVERS and KAFKA_TOPICS"])
            target = savepoints.kafka_targets(config, topics, args.to)
        before, after = savepoints.reset_offsets(engine, pipeline, target, args.dry_run)
    print(f"{'would reset' if args.dry_run else 'reset'} pipeline {pipeline!r} to {args.to}:")
    for tp in sorted(set(before) | set(after)):
        print(f"  {tp[0]}[{tp[1]}] {before.get(tp, '-')} -> {after.get(tp, before.get(tp, '-'))}")
    if env.get("STATE_DIR") and not args.dry_run:  # the filesystem backend's snapshots, where this host sees them
        from connector.backends.filesystem import FilesystemBackend

        dropped = FilesystemBackend(env["STATE_DIR"], pipeline).drop_all()
        print(f"dropped {dropped} pending filesystem snapshot(s) under STATE_DIR")
    return 0


def cmd_deadletters(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.ops import deadletters

    if args.action == "list":
        url, schema, pipeline = database_only(env)
        with _database_errors("listing dead letters"):
            letters = deadletters.list_deadletters(_bookkeeping_engine(url, schema), pipeline, args.limit, args.all)
        print(orjson.dumps(letters, option=orjson.OPT_INDENT_2).decode() if args.json
              else deadletters.format_listing(letters))
        return 0
    landed, refused = deadletters.replay(settings_from(env), args.limit, args.dry_run)
    print(f"{'would replay' if args.dry_run else 'replayed'} {landed} dead letter(s); {len(refused)} still refused"
          + (":" if refused else ""))
    for line in refused:
        print(f"  {line}")
    return 0
