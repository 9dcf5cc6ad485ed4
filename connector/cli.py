"""`eos-connector run | check | migrate | status | savepoint | offsets | deadletters | demo`.

Exit codes: 0 success, 1 the pipeline stopped on an error (the message names what and
where; nothing after the last commit is lost), 2 invalid configuration (or, for
`check`, a service or table that does not fit it).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence

from connector import __version__, redaction
from connector.environment import redact_url
from connector.errors import ConfigError, ConnectorError
from connector.logs import configure_logging
from connector.ops.commands import cmd_deadletters, cmd_offsets, cmd_savepoint, cmd_status, database_only, settings_from
from connector.runtime.retry import Interrupted, retrying

log = logging.getLogger("connector")
EXIT_ERROR, EXIT_CONFIG = 1, 2
# Set by SIGTERM/SIGINT from the first moment `main` runs, so a stop requested during
# start-up (migrations, connecting) is honoured as a clean exit too.
STOP = threading.Event()


def cmd_run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.runtime.build import runner_from_settings
    from connector.runtime.tuning import tune_interpreter

    settings = settings_from(env)
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


def _migrate(url: str, schema: str) -> str:
    import sqlalchemy as sa

    from connector.ops import migrate
    from connector.sink.connection import engine_for
    from connector.sink.sqlstate import convert_db_error

    try:
        revision = migrate.upgrade(engine_for(url), schema)
    except sa.exc.DBAPIError as exc:
        raise convert_db_error(exc, f"migrating schema {schema!r}") from exc
    log.info("bookkeeping schema %r is at revision %s", schema, revision)
    return revision


def cmd_migrate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    url, schema, _ = database_only(env)
    print(f"schema {schema!r} at revision {_migrate(url, schema)} ({redact_url(url)})")
    return 0


def cmd_check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from connector.ops.check import run_checks

    checks = run_checks(settings_from(env))
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
