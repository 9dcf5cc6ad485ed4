"""The connector runs as a role holding only the privileges the README lists: it owns
its bookkeeping schema (CREATE on the database), may create temporary stage tables
(TEMPORARY), and has INSERT (append) or SELECT, INSERT, UPDATE, DELETE (upsert) on the
target table — nothing else."""

from __future__ import annotations

import re
import uuid

import orjson
import pytest

from connector.embedded.harness import wait_until

pytestmark = pytest.mark.integration


def as_role(url: str, role: str) -> str:
    return re.sub(r"^postgresql://[^@/]*@", f"postgresql://{role}@", url)


def fresh_names(p) -> tuple[str, str, str]:
    """A new role name, a new bookkeeping schema name, and the database's name."""
    database = p.services.sql("SELECT current_database()")[0][0]
    return f"eos_lp_{uuid.uuid4().hex[:8]}", f"eos_lp_{uuid.uuid4().hex[:8]}", database


def grant_on_migrated_schema(p, role: str, schema: str, database: str) -> None:
    """A new login `role` with the README's grants on a bookkeeping `schema` another role
    migrated, and INSERT on the pipeline's table."""
    p.services.sql(f"CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE {database} TO {role}; "
                   f"GRANT USAGE ON SCHEMA {schema} TO {role}; "
                   f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; "
                   f"GRANT USAGE ON SEQUENCE {schema}.checkpoint_id_seq TO {role}; "
                   f"GRANT USAGE ON SCHEMA public TO {role}; GRANT INSERT ON {p.table} TO {role}")


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_runs_with_the_documented_grants_only(make_pipeline, mode):
    p = make_pipeline("CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    role, schema, database = fresh_names(p)
    table_privileges = "INSERT" if mode == "append" else "SELECT, INSERT, UPDATE, DELETE"
    p.services.sql(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; "
                   f"REVOKE ALL ON DATABASE {database} FROM PUBLIC; REVOKE CREATE ON SCHEMA public FROM PUBLIC; "
                   f"GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {database} TO {role}; "
                   f"GRANT USAGE ON SCHEMA public TO {role}; "
                   f"GRANT {table_privileges} ON {p.table} TO {role}")
    records = [(str(i % 30).encode(), orjson.dumps({"id": i % 30, "name": f"v{i}"})) for i in range(60)]
    if mode == "append":
        records = [(str(i).encode(), orjson.dumps({"id": i, "name": f"v{i}"})) for i in range(60)]
    p.produce(records, partition_of=lambda i: 0)
    replica = p.start(DATABASE_URL=as_role(p.services.database_url, role), CONNECTOR_SCHEMA=schema,
                      SINK_MODE=mode)
    expected = 60 if mode == "append" else 30
    p.wait_for_rows(expected, 60, replica)
    wait_until(lambda: p.services.sql(f"SELECT next_offset FROM {schema}.offsets WHERE pipeline = %s",
                                      (p.name,)) == [(60,)], 30, "the offsets to reach 60")
    assert replica.stop() == 0
    want = [(i, f"v{i}") for i in range(60)] if mode == "append" else [(i, f"v{i + 30}") for i in range(30)]
    assert sorted(p.rows("id, name")) == want
    owner = p.services.sql("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", (schema,))
    assert owner == [(role,)]


def test_runs_in_a_schema_migrated_by_another_role(make_pipeline):
    """Without CREATE on the database: the schema is migrated by its owner and the role
    gets the documented grants on it; CONNECTOR_AUTO_MIGRATE=false."""
    import subprocess
    import sys

    p = make_pipeline("CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    role, schema, database = fresh_names(p)
    env = p.env(CONNECTOR_SCHEMA=schema)
    subprocess.run([sys.executable, "-m", "connector", "migrate"], env={**env}, check=True, capture_output=True)
    grant_on_migrated_schema(p, role, schema, database)
    p.produce([(None, orjson.dumps({"id": i, "name": f"v{i}"})) for i in range(20)])
    replica = p.start(DATABASE_URL=as_role(p.services.database_url, role), CONNECTOR_SCHEMA=schema,
                      CONNECTOR_AUTO_MIGRATE="false")
    p.wait_for_rows(20, 60, replica)
    assert replica.stop() == 0
    assert sorted(p.rows("id, name")) == [(i, f"v{i}") for i in range(20)]


def test_a_new_revision_is_the_owners_to_apply_and_replicas_run_at_the_one_before(make_pipeline):
    """The README's upgrade path: the schema at 0003, migrated by its owner. The
    connector's role cannot apply 0004 and says so; a replica with
    CONNECTOR_AUTO_MIGRATE=false runs at 0003 meanwhile (the postgres backend too); the
    owner's `migrate` then reaches 0004."""
    import subprocess
    import sys

    from alembic import command

    from connector.ops import migrate
    from connector.sink.connection import engine_for

    p = make_pipeline("CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    role, schema, database = fresh_names(p)
    with engine_for(p.services.database_url).connect() as connection:
        command.upgrade(migrate.alembic_config(connection, schema), "0003")
        connection.commit()
    grant_on_migrated_schema(p, role, schema, database)
    as_connector = {**p.env(CONNECTOR_SCHEMA=schema), "DATABASE_URL": as_role(p.services.database_url, role)}
    refused = subprocess.run([sys.executable, "-m", "connector", "migrate"], env=as_connector, capture_output=True,
                             text=True)
    assert refused.returncode == 1 and "InsufficientPrivilege" in refused.stderr, refused.stderr[-2000:]
    p.produce([(None, orjson.dumps({"id": i, "name": f"v{i}"})) for i in range(20)])
    replica = p.start(DATABASE_URL=as_role(p.services.database_url, role), CONNECTOR_SCHEMA=schema,
                      CONNECTOR_AUTO_MIGRATE="false", STATE_BACKEND="postgres")
    p.wait_for_rows(20, 60, replica)
    assert replica.stop() == 0
    assert sorted(p.rows("id, name")) == [(i, f"v{i}") for i in range(20)]
    assert migrate.current_revision(engine_for(p.services.database_url), schema) == "0003"
    done = subprocess.run([sys.executable, "-m", "connector", "migrate"], env=p.env(CONNECTOR_SCHEMA=schema),
                          capture_output=True, text=True)
    assert done.returncode == 0 and "at revision 0004" in done.stdout, done.stderr[-2000:]


def test_a_column_the_role_may_not_add_stops_the_replica_writing_nothing_of_its_checkpoint(make_pipeline):
    """SINK_AUTO_EVOLVE on a table another role owns: the commit that would add the column
    is refused (42501), the replica stops naming it, and the checkpoint wrote nothing."""
    p = make_pipeline("CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    role, schema, database = fresh_names(p)
    p.services.sql(f"CREATE ROLE {role} LOGIN NOSUPERUSER; GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {database} "
                   f"TO {role}; GRANT USAGE ON SCHEMA public TO {role}; GRANT INSERT ON {p.table} TO {role}")
    p.produce([(None, orjson.dumps({"id": i, "name": f"v{i}", **({"extra": i} if i == 0 else {})}))
               for i in range(10)])
    replica = p.start(DATABASE_URL=as_role(p.services.database_url, role), CONNECTOR_SCHEMA=schema,
                      SINK_AUTO_EVOLVE="true", CHECKPOINT_MAX_RECORDS="100")
    assert replica.wait(60) == 1
    assert f"must be owner of table {p.table}" in replica.output()
    assert p.count() == 0
