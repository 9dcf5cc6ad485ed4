"""Apply the bookkeeping schema's Alembic revisions (`eos-connector migrate`).

Every replica's start brings the schema to `HEAD`. A schema at `HEAD` already is only
read (one query): Alembic takes a fifth of a second to import and run, so it is loaded
only when a revision is to be applied.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0004"  # the newest revision in migrations/versions (tests/unit/test_migrate_head.py keeps it so)


def alembic_config(connection: sa.Connection, schema: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("connector.migrations")))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def upgrade(engine: sa.Engine, schema: str) -> str:
    """Bring `schema` to the newest revision; returns that revision."""
    with engine.connect() as connection:
        if stored_revision(connection, schema) == HEAD:
            return HEAD
        connection.rollback()  # the read's transaction: Alembic begins its own
        from alembic import command
        from alembic.script import ScriptDirectory

        config = alembic_config(connection, schema)
        command.upgrade(config, "head")
        connection.commit()
        return ScriptDirectory.from_config(config).get_current_head() or ""


def current_revision(engine: sa.Engine, schema: str) -> str | None:
    with engine.connect() as connection:
        return stored_revision(connection, schema)


def stored_revision(connection: sa.Connection, schema: str) -> str | None:
    """The revision Alembic recorded in `schema`'s version table; None before the first."""
    if not sa.inspect(connection).has_table("alembic_version", schema=schema):
        return None
    version = sa.table("alembic_version", sa.column("version_num"), schema=schema)
    return connection.execute(sa.select(version.c.version_num)).scalar_one_or_none()
