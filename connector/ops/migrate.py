"""Apply the bookkeeping schema's Alembic revisions (`eos-connector migrate`)."""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory


def alembic_config(connection: sa.Connection, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("connector.migrations")))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def upgrade(engine: sa.Engine, schema: str) -> str:
    """Bring `schema` to the newest revision; returns that revision."""
    with engine.connect() as connection:
        config = alembic_config(connection, schema)
        command.upgrade(config, "head")
        connection.commit()
        return ScriptDirectory.from_config(config).get_current_head() or ""


def current_revision(engine: sa.Engine, schema: str) -> str | None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
        return context.get_current_revision()
