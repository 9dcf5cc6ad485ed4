"""Alembic environment: runs on the connection and schema the caller hands in.

`connector.ops.migrate.upgrade()` passes `connection` and `schema` through
`config.attributes`. Concurrent replicas starting at once serialise on an advisory
lock, and PostgreSQL's transactional DDL makes a half-applied revision impossible.
"""

from alembic import context
from sqlalchemy import text

from connector import bookkeeping

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

context.configure(
    connection=connection,
    target_metadata=bookkeeping.metadata,
    version_table_schema=schema,
    include_schemas=False,
    transaction_per_migration=False,
)
with context.begin_transaction():
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('eos-connector migrate'))"))
    quoted = connection.dialect.identifier_preparer.quote_schema(schema)
    connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
    context.run_migrations()
