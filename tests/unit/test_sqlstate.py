"""One classifier decides what a SQLSTATE means, for the retry decision and for the
isolation of records at fault alike."""

from __future__ import annotations

import psycopg
import pytest

from connector.errors import CheckpointTimeout, PermanentError, TransientError
from connector.sink.sqlstate import Kind, classify, convert_db_error, record_fault, session_trouble

CASES = [
    ("08006", Kind.TRANSIENT),  # connection failure
    ("08P01", Kind.TRANSIENT),  # protocol violation
    ("40001", Kind.TRANSIENT),  # serialization failure
    ("40P01", Kind.TRANSIENT),  # deadlock detected
    ("40003", Kind.TRANSIENT),  # statement completion unknown
    ("40002", Kind.RECORD),  # a deferred constraint at COMMIT
    ("53100", Kind.TRANSIENT),  # disk full
    ("53300", Kind.TRANSIENT),  # too many connections
    ("57000", Kind.TRANSIENT),  # operator intervention
    ("57P01", Kind.TRANSIENT),  # admin shutdown
    ("57P03", Kind.TRANSIENT),  # cannot connect now
    ("57P04", Kind.PERMANENT),  # database dropped
    ("57014", Kind.TIMEOUT),  # statement timeout
    ("55P03", Kind.TRANSIENT),  # lock not available
    ("25P03", Kind.TRANSIENT),  # idle in transaction session timeout
    ("22001", Kind.RECORD),  # string data right truncation
    ("22P02", Kind.RECORD),  # invalid text representation
    ("23505", Kind.RECORD),  # unique violation
    ("23502", Kind.RECORD),  # not null violation
    ("54000", Kind.RECORD),  # index row too large
    ("54001", Kind.PERMANENT),  # statement too complex
    ("42501", Kind.PERMANENT),  # insufficient privilege
    ("42P01", Kind.PERMANENT),  # undefined table
    ("XX000", Kind.PERMANENT),  # internal error
    ("", Kind.TRANSIENT),  # no SQLSTATE: the connection failed
]
ERROR_TYPE = {Kind.TRANSIENT: TransientError, Kind.TIMEOUT: CheckpointTimeout, Kind.RECORD: PermanentError,
              Kind.PERMANENT: PermanentError}


def failed(sqlstate: str) -> psycopg.Error:
    """A driver error as psycopg raises it, with `sqlstate` (psycopg's own is set by the server)."""
    error_type = type("Failed", (psycopg.OperationalError,), {"sqlstate": sqlstate or None})
    return error_type(f"failed with {sqlstate or 'no SQLSTATE'}")


@pytest.mark.parametrize(("sqlstate", "kind"), CASES)
def test_each_sqlstate_has_one_meaning_everywhere(sqlstate, kind):
    """The retry decision, the writer's 'is it the session' question and its
    'is it the record' question follow the one table."""
    exc = failed(sqlstate)
    assert classify(sqlstate) is kind
    assert type(convert_db_error(exc, "doing")) is ERROR_TYPE[kind]
    assert session_trouble(exc) == (kind in (Kind.TRANSIENT, Kind.TIMEOUT))
    assert (record_fault(exc) is not None) == (kind is Kind.RECORD)


def test_a_refused_login_is_permanent_though_it_has_no_sqlstate():
    error = convert_db_error(psycopg.OperationalError('password authentication failed for user "x"'), "connecting")
    assert type(error) is PermanentError and "connecting: OperationalError" in str(error)


def test_a_connection_lost_inside_a_transaction_is_transient():
    """SQLAlchemy's PendingRollbackError (the connection was invalidated mid-transaction)
    is retried on a fresh connection, not taken as permanent."""
    import sqlalchemy as sa

    error = convert_db_error(sa.exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back"),
                             "committing checkpoint 7")
    assert type(error) is TransientError and "committing checkpoint 7" in str(error)
