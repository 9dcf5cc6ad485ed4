"""`eos-connector run | check | migrate | status | savepoint | offsets | deadletters | demo`.

Exit codes: 0 success, 1 the pipeline stopped on an error (the message names what and
where; nothing after the last commit is lost), 2 invalid configuration (or, for
`check`, a service or table that does not fit it).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from connector import __version__, redaction
from connector.config import Settings, libpq_url, read_secret_files, redact_url
from connector.errors import ConfigError, ConnectorError
from connector.redaction import RedactingFilter
from connector.runtime.retry import Interrupted, retrying

log = logging.getLogger("connector")
EXIT_ERROR, EXIT_CONFIG = 1, 2
# Set by SIGTERM/SIGINT from the first moment `main` runs, so a stop requested during
# start-up (migrations, connecting) is honoured as a clean exit too.
STOP = threading.Event()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log lines on stderr: `text`, or `json` (one object per line: timestamp, level,
    logger, process, message, and the exception if any) for log collectors."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _settings(env: Mapping[str, str]) -> Settings:
    settings = Settings.from_env(env)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.runtime.build import runner_from_settings
    from connector.runtime.tuning import tune_interpreter

    settings = _settings(env)
    log.info("eos-connector %s starting: %r", __version__, settings)
    if settings.connector_auto_migrate:
        try:
            retrying(lambda: _migrate(settings.libpq_url, settings.connector_schema), settings.restart_strategy,
                     "migrating the bookkeeping schema", STOP.wait)
        except Interrupted:
            return 0
    runner = runner_from_settings(settings, stop=STOP)
    server = None
    if settings.http_port:
        from connector.observability import serve

        try:
            server = serve(settings.http_host, settings.http_port, runner.metrics, runner.health)
        except OSError as exc:
            raise ConfigError([f"HTTP_PORT={settings.http_port}: cannot listen on {settings.http_host}:"
                               f"{settings.http_port}: {exc.strerror}; choose another port, or 0 to disable"]) from None
    tune_interpreter()
    try:
        return runner.run()
    finally:
        if server is not None:
            server.shutdown()


def _database_only(env: Mapping[str, str]) -> tuple[str, str, str]:
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


def _migrate(url: str, schema: str) -> str:
    import sqlalchemy as sa

    from connector.ops import migrate
    from connector.sink.postgres import engine_for
    from connector.sink.sqlstate import convert_db_error

    try:
        revision = migrate.upgrade(engine_for(url), schema)
    except sa.exc.DBAPIError as exc:
        raise convert_db_error(exc, f"migrating schema {schema!r}") from exc
    log.info("bookkeeping schema %r is at revision %s", schema, revision)
    return revision


def cmd_migrate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    url, schema, _ = _database_only(env)
    print(f"schema {schema!r} at revision {_migrate(url, schema)} ({redact_url(url)})")
    return 0


def cmd_status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.kafka.client import command_config
    from connector.ops.status import kafka_positions, pipeline_status

    url, schema, pipeline = _database_only(env)
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
    from connector.sink.postgres import engine_for

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

    url, schema, pipeline = _database_only(env)
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

    url, schema, pipeline = _database_only(env)
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
        url, schema, pipeline = _database_only(env)
        with _database_errors("listing dead letters"):
            letters = deadletters.list_deadletters(_bookkeeping_engine(url, schema), pipeline, args.limit, args.all)
        print(orjson.dumps(letters, option=orjson.OPT_INDENT_2).decode() if args.json
              else deadletters.format_listing(letters))
        return 0
    landed, refused = deadletters.replay(_settings(env), args.limit, args.dry_run)
    print(f"{'would replay' if args.dry_run else 'replayed'} {landed} dead letter(s); {len(refused)} still refused"
          + (":" if refused else ""))
    for line in refused:
        print(f"  {line}")
    return 0


def cmd_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.ops.check import run_checks

    checks = run_checks(_settings(env))
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else EXIT_CONFIG


def cmd_demo(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.ops.demo import run_demo

    configure_logging(env.get("LOG_LEVEL", "WARNING").upper())
    return run_demo(records=args.records, partitions=args.partitions, kills=args.kills)


def cmd_demo_producer(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.ops.demo import produce_forever

    configure_logging(env.get("LOG_LEVEL", "INFO").upper(), env.get("LOG_FORMAT", "text").lower())
    missing = [name for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPICS") if not env.get(name)]
    if missing:
        raise ConfigError([f"{name} is required but not set" for name in missing])
    topic = env["KAFKA_TOPICS"].split(",")[0].strip()
    sent = produce_forever(env["KAFKA_BOOTSTRAP_SERVERS"], topic, args.rate, args.count)
    print(f"produced {sent} visit events to {topic!r}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="eos-connector", description=__doc__.split("\n")[0] if __doc__ else None)
    top.add_argument("--version", action="version", version=f"eos-connector {__version__}")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run one replica of the pipeline (configured by environment variables)")
    commands.add_parser("migrate", help="create or upgrade the bookkeeping schema")
    commands.add_parser("check", help="validate the settings and reach Kafka, the database and the sink table "
                                      "without consuming anything (exit 0 when all is well, 2 otherwise)")
    status = commands.add_parser("status", help="show the pipeline's committed offsets and last checkpoint")
    status.add_argument("--json", action="store_true")
    demo = commands.add_parser("demo", help="run the exactly-once demo on embedded backends, with crashes")
    demo.add_argument("--records", type=int, default=20_000)
    demo.add_argument("--partitions", type=int, default=8)
    demo.add_argument("--kills", type=int, default=3)
    savepoint = commands.add_parser("savepoint", help="take a named, consistent cut of the pipeline's offsets "
                                                     "(running replicas checkpoint first), or list them")
    savepoint.add_argument("action", choices=["create", "list"])
    savepoint.add_argument("name", nargs="?")
    savepoint.add_argument("--stop", action="store_true", help="stop-with-savepoint: the replicas stop after "
                                                                "their final checkpoint")
    savepoint.add_argument("--timeout", type=float, default=120, help="seconds to wait for the replicas")
    savepoint.add_argument("--json", action="store_true")
    offsets = commands.add_parser("offsets", help="move a stopped pipeline's offsets (refused while replicas "
                                                  "are live)")
    offsets.add_argument("action", choices=["reset"])
    offsets.add_argument("--to", required=True, help="earliest | latest | timestamp:<ISO-8601 or epoch ms> | "
                                                     "savepoint:<name>")
    offsets.add_argument("--dry-run", action="store_true", help="show the change, make none")
    letters = commands.add_parser("deadletters", help="list the records the pipeline dead-lettered, or replay them "
                                                      "into the table once it accepts them")
    letters.add_argument("action", choices=["list", "replay"])
    letters.add_argument("--limit", type=int, default=1000, help="at most this many (oldest first)")
    letters.add_argument("--all", action="store_true", help="list: include those already replayed")
    letters.add_argument("--json", action="store_true", help="list: as JSON")
    letters.add_argument("--dry-run", action="store_true", help="replay: show what would land, change nothing")
    producer = commands.add_parser("demo-producer", help="produce demo visit events to KAFKA_TOPICS at a steady "
                                                         "rate (the compose file's producer)")
    producer.add_argument("--rate", type=int, default=200, help="events per second")
    producer.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    return top


COMMANDS = {"run": cmd_run, "check": cmd_check, "migrate": cmd_migrate, "status": cmd_status, "demo": cmd_demo,
            "demo-producer": cmd_demo_producer, "savepoint": cmd_savepoint, "offsets": cmd_offsets,
            "deadletters": cmd_deadletters}


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: STOP.set())
    env = os.environ if env is None else env
    # Every secret the settings hold is masked in everything written from here on.
    redaction.remember(redaction.secrets_in(env))  # secrets in files: when they are read
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = redaction.RedactingStream(sys.stdout), redaction.RedactingStream(sys.stderr)
    try:
        return _main(parser().parse_args(argv), env)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:  # a bug: its traceback, through the masking stream
        traceback.print_exc()
        return EXIT_ERROR
    finally:
        sys.stdout.flush()
        sys.stdout, sys.stderr = streams


def _main(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        return COMMANDS[args.command](args, env)
    except ConfigError as exc:
        print(f"eos-connector: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConnectorError as exc:
        log.error("stopped: %s: %s", type(exc).__name__, exc)
        return EXIT_ERROR
