"""The bookkeeping schema: Alembic's revisions produce exactly the shared metadata."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connector import bookkeeping
from connector.ops import migrate
from connector.sink.connection import engine_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("schema", ["eos_connector_mig", 'Odd "Schema"; drop'])
def test_revisions_match_metadata_and_are_idempotent(services, schema):
    """After upgrade, autogenerate finds no difference to bookkeeping.metadata; a second
    upgrade changes nothing. Hostile schema names are quoted, never formatted in."""
    engine = engine_for(services.database_url)
    assert migrate.upgrade(engine, schema) == "0004"
    assert migrate.upgrade(engine, schema) == "0004"
    assert migrate.current_revision(engine, schema) == "0004"
    target = sa.MetaData()
    for table in bookkeeping.metadata.tables.values():
        table.to_metadata(target, schema=schema)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True, "version_table_schema": schema,
            "include_name": lambda name, type_, _: type_ != "schema" or name == schema})
        diff = [d for d in compare_metadata(context, target) if "alembic_version" not in str(d)]
    tables = services.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                          "ORDER BY table_name", (schema,))
    assert [t[0] for t in tables] == ["alembic_version", "checkpoints", "deadletters", "offsets", "replicas", "requests",
                                      "savepoints", "snapshots"]
    assert diff == []
    # Zstandard's payloads are not compressed again (revision 0004): attstorage 'e', not 'x'.
    storage = services.sql("SELECT a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE n.nspname = %s AND c.relname = 'snapshots' AND a.attname = 'payload'", (schema,))
    assert storage == [("e",)]


def test_a_schema_at_head_is_read_without_loading_alembic(services):
    """A replica's start on a migrated schema reads its revision and applies nothing:
    Alembic (a fifth of a second to import and run) is not even loaded; a schema one
    revision behind is brought to the head by Alembic."""
    engine = engine_for(services.database_url)
    head, behind = (f"eos_connector_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("head", "behind"))
    with engine.connect() as connection:
        command.upgrade(migrate.alembic_config(connection, behind), "0003")
        connection.commit()

    def upgrade_twice(schema: str) -> list[str]:
        code = ("import sys\nfrom connector.ops import migrate\nfrom connector.sink.connection import engine_for\n"
                f"engine = engine_for({services.database_url!r})\n"
                f"print(migrate.upgrade(engine, {schema!r}), 'alembic' in sys.modules)\n"
                f"print(migrate.upgrade(engine, {schema!r}), 'alembic' in sys.modules)\n")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")[:2]

    assert upgrade_twice(head) == ["0004 True", "0004 True"]  # created by Alembic, then read
    assert upgrade_twice(head) == ["0004 False", "0004 False"]
    assert upgrade_twice(behind) == ["0004 True", "0004 True"]
    assert migrate.current_revision(engine, behind) == "0004"


def test_migrate_and_status_commands(services, make_pipeline):
    """`eos-connector migrate` and `status --json` work from DATABASE_URL alone."""
    p = make_pipeline("CREATE TABLE {table} (event_id bigint)")
    env = {"DATABASE_URL": services.database_url, "CONNECTOR_SCHEMA": "eos_connector_cli",
           "CONNECTOR_NAME": p.name, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "connector", "migrate"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "at revision 0004" in out.stdout
    out = subprocess.run([sys.executable, "-m", "connector", "status", "--json"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert '"pipeline": "' + p.name in out.stdout and '"last_checkpoint": null' in out.stdout


def test_migrate_without_database_url_exits_2():
    out = subprocess.run([sys.executable, "-m", "connector", "migrate"], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert out.returncode == 2 and "DATABASE_URL is required" in out.stderr
