"""The connector's own tables, as SQLAlchemy Core objects shared with Alembic.

The tables are declared without a schema; every connection that uses them maps the
`None` schema to `CONNECTOR_SCHEMA` through SQLAlchemy's `schema_translate_map`, so the
bookkeeping schema is configurable and its name is always quoted by the library.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# Checkpoint IDs: unique per database, monotonic, never reused after a crash.
checkpoint_ids = Sequence("checkpoint_id_seq", metadata=metadata)

# The source of truth for where each pipeline resumes: next_offset = last written + 1.
offsets = Table(
    "offsets",
    metadata,
    Column("pipeline", Text, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=True),
    Column("checkpoint_id", BigInteger, nullable=True),
    Column("replica", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row per committed checkpoint: its presence makes a re-commit a no-op.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("pipeline", Text, primary_key=True),
    Column("checkpoint_id", BigInteger, primary_key=True),
    Column("replica", Text, nullable=False),
    Column("offsets", JSONB, nullable=False),
    Column("counts", JSONB, nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The `postgres` state backend: durable snapshots awaiting their commit.
snapshots = Table(
    "snapshots",
    metadata,
    Column("pipeline", Text, primary_key=True),
    Column("checkpoint_id", BigInteger, primary_key=True),
    Column("replica", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


# Live replicas: a heartbeat row each, refreshed every few seconds and removed on a clean
# exit; `acked_request` is the newest operator request (savepoint) the replica completed.
replicas = Table(
    "replicas",
    metadata,
    Column("pipeline", Text, primary_key=True),
    Column("replica", Text, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_seen", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("acked_request", BigInteger, nullable=False, server_default="0"),
)

# Operator requests to a pipeline's replicas: `checkpoint` now, or `stop` after one.
requests = Table(
    "requests",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("pipeline", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Savepoints: a named, consistent cut of a pipeline's offsets ([[topic, partition, next_offset]]).
savepoints = Table(
    "savepoints",
    metadata,
    Column("name", Text, primary_key=True),
    Column("pipeline", Text, nullable=False),
    Column("offsets", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Dead letters (ERRORS_TOLERANCE=all): records the sink could not write, inserted by the
# commit transaction of the checkpoint that read them, so they are exactly-once too.
# `checkpoint_id` is part of the key: an offsets reset that re-reads a record makes a new
# dead letter rather than failing on the old one.
deadletters = Table(
    "deadletters",
    metadata,
    Column("pipeline", Text, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("checkpoint_id", BigInteger, primary_key=True),
    Column("replica", Text, nullable=False),
    Column("record_timestamp", DateTime(timezone=True), nullable=True),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=True),
    Column("headers", JSONB, nullable=False),  # [[name, base64 value or null], …] in record order
    Column("error_class", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("replayed_at", DateTime(timezone=True), nullable=True),  # written to the table by `deadletters replay`
    Column("forwarded_at", DateTime(timezone=True), nullable=True),  # produced to ERRORS_DEADLETTER_TOPIC
)


def translate(schema: str) -> dict[str | None, str]:
    """The execution option that places the tables above in `schema`."""
    return {None: schema}
