"""The pipeline's database connection: opened from DATABASE_URL exactly as libpq reads
it, kept open between transactions, and dropped after a transient failure so the retry
starts on a fresh one. Driver errors leave here as the project's own (sink/sqlstate.py)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.pool import NullPool

from connector import bookkeeping as bk
from connector.errors import TransientError
from connector.sink.sqlstate import convert_db_error

log = logging.getLogger(__name__)
APPLICATION_NAME = "eos-connector"
# A connection whose peer is gone is noticed in about half a minute, not after the
# kernel's two hours: TCP keepalives while a reply is awaited, and a bound on data left
# unacknowledged (a commit cannot hang on a dead network; it fails and is retried).
# Each is used only where DATABASE_URL does not set it. libpq ignores them on Unix sockets.
LIVENESS = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3",
            "tcp_user_timeout": "30000"}
# COPY runs on the driver's own cursor; a connection lost inside a transaction leaves it
# invalid until rolled back (PendingRollbackError): the connection is dropped as well.
DRIVER_ERRORS = (sa.exc.DBAPIError, psycopg.Error, sa.exc.PendingRollbackError)


# The connector's sessions (by this session's application_name) that hold a transaction
# which has written (an xid) and has waited on its client longer than the checkpoint
# timeout: a replica frozen inside its commit. The server ends neither of the two kinds
# met: a COPY FROM STDIN waiting for the rest of its payload (statement_timeout is not
# served while a statement waits on its client, and the session is not idle), and a
# session idle in transaction after a pipeline (psycopg's executemany), where
# idle_in_transaction_session_timeout was not armed. Either would hold the commit's locks
# (the offsets rows) until it woke; ending it is what the timeouts do to any other.
# (The sessions are chosen first, MATERIALIZED: a filter's terms may run in any order.)
_STUCK_ON_CLIENT = sa.text(
    "WITH stuck AS MATERIALIZED (SELECT pid FROM pg_stat_activity "
    "WHERE application_name = current_setting('application_name') AND datname = current_database() "
    "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL AND wait_event = 'ClientRead' "
    "AND state IN ('active', 'idle in transaction') AND state_change < now() - make_interval(secs => :seconds)) "
    "SELECT pid FROM stuck WHERE pg_terminate_backend(pid)")


def end_sessions_stuck_on_their_client(conn: sa.Connection, timeout_ms: int) -> list[int]:
    """End the connector's sessions whose writing transaction has waited on its client for
    more than `timeout_ms` (a replica frozen inside its commit); their process IDs. Needs
    the same role or pg_signal_backend: without it PostgreSQL refuses, and this raises."""
    return [pid for (pid,) in conn.execute(_STUCK_ON_CLIENT, {"seconds": timeout_ms / 1000})]


def engine_for(url: str) -> sa.Engine:
    """An engine whose connections libpq opens from `url` exactly as given (so every
    form libpq accepts works, `?host=/socket/dir` and PG* variables included). The
    client encoding is UTF-8 whatever the server's (even SQL_ASCII): records are UTF-8."""
    options = {"client_encoding": "UTF8"}
    if "connect_timeout" not in url and "PGCONNECT_TIMEOUT" not in os.environ:
        options["connect_timeout"] = "10"  # an unreachable host fails (and is retried) in 10 s
    if "application_name" not in url and "PGAPPNAME" not in os.environ:
        options["application_name"] = APPLICATION_NAME  # lets operators find its sessions
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error:  # connecting reports it, with the settings' wording
        given = {}
    options.update({name: value for name, value in LIVENESS.items() if name not in given})
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url, **options),  # type: ignore[arg-type]
                            poolclass=NullPool)


class Database:
    """One connection to the pipeline's database, the bookkeeping schema named `schema`."""

    def __init__(self, url: str, schema: str) -> None:
        self._url, self.schema = url, schema
        self._conn: sa.Connection | None = None

    def connection(self) -> sa.Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            try:
                conn = engine_for(self._url).connect()
            except sa.exc.DBAPIError as exc:
                raise self.failed(exc, "connecting to the database") from exc
            self._conn = conn.execution_options(schema_translate_map=bk.translate(self.schema))
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def failed(self, exc: BaseException, doing: str) -> Exception:
        """The project's error for `exc`; after a transient one the connection is
        dropped, so a retry starts on a fresh one."""
        error = convert_db_error(exc, doing)
        if isinstance(error, TransientError) and self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # it is broken already; the new one matters
                log.debug("dropping a failed connection also failed", exc_info=True)
            self._conn = None
        return error

    @contextlib.contextmanager
    def transaction(self, doing: str) -> Iterator[sa.Connection]:
        """One transaction, committed when the block ends (rolled back if it raises);
        a driver error leaves as the project's own, naming `doing`."""
        conn = self.connection()
        try:
            with conn.begin():
                yield conn
        except DRIVER_ERRORS as exc:
            raise self.failed(exc, doing) from exc

    @contextlib.contextmanager
    def reading(self, doing: str) -> Iterator[sa.Connection]:
        """A READ ONLY transaction: PostgreSQL itself refuses any write inside it."""
        with self.transaction(doing) as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn

    def run(self, doing: str, statement: sa.Executable, params: Any = None) -> list[sa.Row[Any]]:
        """Run one statement in its own transaction; the rows it returns, if any."""
        with self.transaction(doing) as conn:
            result = conn.execute(statement, params)
            return list(result.all()) if result.returns_rows else []
