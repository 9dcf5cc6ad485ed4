"""Bookkeeping tables: offsets, checkpoints, snapshots and the checkpoint ID sequence.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes["schema"]
    op.execute(sa.schema.CreateSequence(sa.Sequence("checkpoint_id_seq", schema=schema)))
    now = sa.text("now()")
    op.create_table(
        "offsets",
        sa.Column("pipeline", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=True),
        sa.Column("checkpoint_id", sa.BigInteger, nullable=True),
        sa.Column("replica", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        schema=schema,
    )
    op.create_table(
        "checkpoints",
        sa.Column("pipeline", sa.Text, primary_key=True),
        sa.Column("checkpoint_id", sa.BigInteger, primary_key=True),
        sa.Column("replica", sa.Text, nullable=False),
        sa.Column("offsets", postgresql.JSONB, nullable=False),
        sa.Column("counts", postgresql.JSONB, nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        schema=schema,
    )
    op.create_table(
        "snapshots",
        sa.Column("pipeline", sa.Text, primary_key=True),
        sa.Column("checkpoint_id", sa.BigInteger, primary_key=True),
        sa.Column("replica", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        schema=schema,
    )


def downgrade() -> None:
    schema = context.config.attributes["schema"]
    for table in ("snapshots", "checkpoints", "offsets"):
        op.drop_table(table, schema=schema)
    op.execute(sa.schema.DropSequence(sa.Sequence("checkpoint_id_seq", schema=schema)))
