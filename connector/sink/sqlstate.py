"""One classifier for the database's errors: what a SQLSTATE means for the connector.

Each SQLSTATE is looked up by its full code, then by its class (the first two characters):

- TRANSIENT: the session's trouble, not what it sent — retry on a fresh connection
  (connection, resources, operator intervention, transaction rollback, lock not available,
  idle in transaction too long);
- TIMEOUT: the statement ran past CHECKPOINT_TIMEOUT_MS and was cancelled (retried too);
- RECORD: what a record carries (a data exception, an integrity violation, a value too
  large for an index) — the record is isolated and dead-lettered or named;
- PERMANENT: anything else; retrying will not help.

A driver error without a SQLSTATE is a connection that failed: transient, unless libpq's
message says the login itself is refused.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa

from connector.errors import CheckpointTimeout, PermanentError, TransientError


class Kind(enum.Enum):
    TRANSIENT = "transient"
    TIMEOUT = "timeout"
    RECORD = "record"
    PERMANENT = "permanent"


CLASSIFICATION: dict[str, Kind] = {
    "08": Kind.TRANSIENT,  # connection exception
    "40": Kind.TRANSIENT,  # transaction rollback: serialization failure, deadlock
    "40002": Kind.RECORD,  # a deferred constraint violated at COMMIT
    "53": Kind.TRANSIENT,  # insufficient resources
    "57": Kind.TRANSIENT,  # operator intervention: shutdown, crash, cannot connect now
    "57014": Kind.TIMEOUT,  # query_canceled: statement_timeout
    "57P04": Kind.PERMANENT,  # database_dropped
    "55P03": Kind.TRANSIENT,  # lock_not_available
    "25P03": Kind.TRANSIENT,  # idle_in_transaction_session_timeout
    "22": Kind.RECORD,  # data exception
    "23": Kind.RECORD,  # integrity constraint violation
    "54000": Kind.RECORD,  # program_limit_exceeded: e.g. an index row too large
}

# libpq reports a refused login without a SQLSTATE; these say retrying will not help.
PERMANENT_LOGIN = re.compile(r"authentication failed|no pg_hba\.conf entry|does not exist|permission denied"
                             r"|not permitted to log in|certificate|SSL is not enabled"
                             r"|invalid \S+ value|invalid connection option|invalid percent-encoded|invalid URI", re.I)


def classify(sqlstate: str) -> Kind:
    """The kind of a SQLSTATE ("" — no SQLSTATE — is a failed connection: transient)."""
    if not sqlstate:
        return Kind.TRANSIENT
    return CLASSIFICATION.get(sqlstate) or CLASSIFICATION.get(sqlstate[:2]) or Kind.PERMANENT


def sqlstate_of(exc: BaseException) -> str:
    """The SQLSTATE of a driver error (SQLAlchemy's wrapper or psycopg's own); "" if none."""
    return getattr(getattr(exc, "orig", exc), "sqlstate", None) or ""


def session_trouble(exc: BaseException) -> bool:
    """Whether a driver error is the session's (retry the same work) rather than the
    statement's or its data's."""
    return classify(sqlstate_of(exc)) in (Kind.TRANSIENT, Kind.TIMEOUT)


def convert_db_error(exc: BaseException, doing: str) -> Exception:
    """A driver error as the project's own type: CheckpointTimeout or TransientError
    (retry) or PermanentError."""
    orig = getattr(exc, "orig", exc)
    sqlstate = sqlstate_of(exc)
    message = f"{doing}: {type(orig).__name__}: {str(orig).strip()}"
    if isinstance(exc, sa.exc.PendingRollbackError):  # the connection was lost inside a transaction
        return TransientError(message)
    if not sqlstate and not (getattr(exc, "connection_invalidated", False)
                             or isinstance(orig, psycopg.OperationalError)):
        return PermanentError(message)  # a driver error that is no failed connection
    if not sqlstate and PERMANENT_LOGIN.search(str(orig)):
        return PermanentError(message)
    kind = classify(sqlstate)
    if kind is Kind.TIMEOUT:
        return CheckpointTimeout(message)
    if kind is Kind.TRANSIENT:
        return TransientError(message)
    return PermanentError(message)


@dataclass(frozen=True)
class Rejection:
    """Why a record wrote nothing: the error's class and its message."""

    error_class: str
    error: str


# Raised by Python while a record's row is written (a lone surrogate COPY cannot encode, an
# arithmetic error): like a database refusal, the fault of what a record carries.
PYTHON_FAULTS = (ValueError, TypeError, ArithmeticError)


def record_fault(exc: BaseException) -> Rejection | None:
    """The Rejection for an error a record's content caused; None for any other."""
    if isinstance(exc, PYTHON_FAULTS):
        return Rejection(type(exc).__name__, str(exc))
    orig = getattr(exc, "orig", exc)
    sqlstate = sqlstate_of(exc)
    if not sqlstate or classify(sqlstate) is not Kind.RECORD:
        return None
    diag = getattr(orig, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(orig)).strip()
    detail = getattr(diag, "message_detail", None)
    return Rejection(type(orig).__name__, f"SQLSTATE {sqlstate}: {message}" + (f" ({detail})" if detail else ""))
