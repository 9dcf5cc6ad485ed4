"""`eos-connector check` against real services: every check named, nothing consumed,
nothing written, exit 0 only when the pipeline could run, secrets never shown."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration
DDL = "CREATE TABLE {table} (id int PRIMARY KEY, name text, seen inet)"
SECRET = "s3cr3t-Pa55word"


def check(p, **overrides: str) -> tuple[int, str]:
    env = {**os.environ, **p.env(**overrides)}
    done = subprocess.run([sys.executable, "-m", "connector", "check"], env=env, capture_output=True,
                          text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{SECRET}@").replace("postgres:@", f"postgres:{SECRET}@")


def test_everything_reachable(make_pipeline):
    p = make_pipeline(DDL)
    p.produce([(b"1", b'{"id": 1}')])
    code, out = check(p, SINK_MODE="upsert", DATABASE_URL=with_password(p.services.database_url))
    assert code == 0, out
    assert f"ok    kafka: Kafka at {p.services.bootstrap_servers}: '{p.topic}' (4 partitions)" in out
    assert f"table '{p.table}' with 3 mappable column(s), key (id); passed to PostgreSQL as text" in out
    assert SECRET not in out
    assert "bookkeeping: schema 'eos_connector'" in out
    # Nothing written, nothing committed: no rows, no offsets (the schema may not even exist yet).
    assert p.count() == 0
    if p.services.sql("SELECT to_regclass('eos_connector.offsets')")[0][0] is not None:
        assert p.offsets() == {}


def test_every_problem_named(make_pipeline):
    p = make_pipeline(DDL)
    code, out = check(p, KAFKA_TOPICS=f"{p.topic},no_such_topic", SINK_TABLE="no_such_table",
                      DATABASE_URL=with_password(p.services.database_url))
    assert code == 2, out
    assert "FAIL  kafka:" in out and "'no_such_topic' (" in out
    assert "FAIL  database:" in out and "'no_such_table' does not exist" in out
    assert SECRET not in out


def test_a_table_to_make_is_named_and_writes_nothing(make_pipeline):
    p = make_pipeline(DDL)
    code, out = check(p, SINK_TABLE="made_by_run", SINK_AUTO_CREATE="true", SINK_MODE="upsert", SINK_KEY_COLUMNS="id")
    assert code == 0, out
    assert "table 'made_by_run' does not exist yet: run makes it from its first record (SINK_AUTO_CREATE); upsert" in out
    assert p.services.sql("SELECT to_regclass('made_by_run')") == [(None,)]
    code, out = check(p, SINK_TABLE="made_by_run", SINK_AUTO_CREATE="true", SINK_MODE="upsert")
    assert code == 2 and "SINK_AUTO_CREATE in upsert mode needs SINK_KEY_COLUMNS" in out, out


def test_upsert_without_a_key_and_unreachable_kafka(make_pipeline):
    p = make_pipeline("CREATE TABLE {table} (id int, name text)")
    code, out = check(p, SINK_MODE="upsert", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert code == 2, out
    assert "FAIL  kafka: Kafka at 127.0.0.1:9: no metadata within 10s" in out
    assert "FAIL  database:" in out and "key" in out


def test_bad_settings_exit_2_before_any_connection(make_pipeline):
    p = make_pipeline(DDL)
    code, out = check(p, SINK_MODE="merge", DATABASE_URL=f"postgresql://u:{SECRET}@nowhere.invalid/db")
    assert code == 2 and "SINK_MODE" in out and SECRET not in out


def test_schema_registry_checked_when_a_format_needs_it(make_pipeline):
    """VALUE_FORMAT=avro: `check` reaches the registry; one that does not answer fails it."""
    p = make_pipeline(DDL)
    code, out = check(p, VALUE_FORMAT="avro", SCHEMA_REGISTRY_URL=f"mock://{p.name}")
    assert code == 0 and "ok    schema registry: Schema Registry at mock://" in out, out
    code, out = check(p, VALUE_FORMAT="avro", SCHEMA_REGISTRY_URL="http://127.0.0.1:9/",
                      SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=f"user:{SECRET}")
    assert code == 2 and "FAIL  schema registry: Schema Registry at http://127.0.0.1:9/" in out, out
    assert SECRET not in out


def test_dead_letter_topic_must_exist(make_pipeline):
    p = make_pipeline(DDL)
    code, out = check(p, ERRORS_TOLERANCE="all", ERRORS_DEADLETTER_TOPIC=f"{p.topic}_missing_dlq")
    assert code == 2 and f"'{p.topic}_missing_dlq' (" in out, out
    p.services.create_topic(f"{p.topic}_dlq", 1)
    code, out = check(p, ERRORS_TOLERANCE="all", ERRORS_DEADLETTER_TOPIC=f"{p.topic}_dlq")
    assert code == 0, out


def bookkeeping_contents(p, schema: str = "eos_connector") -> dict[str, str]:
    tables = [r[0] for r in p.services.sql("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
    return {t: p.services.sql(f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) "
                              f"FROM {schema}.{t} r")[0][0] for t in tables}


def test_check_writes_nothing_even_with_start_from_savepoint(make_pipeline):
    """START_FROM_SAVEPOINT is applied by `run`, never by `check`: the bookkeeping tables
    stay as they were, and a schema not created yet is no error of the database check."""
    p = make_pipeline(DDL)
    fresh = f"fresh_{p.name}"[:60]
    code, out = check(p, CONNECTOR_SCHEMA=fresh, START_FROM_SAVEPOINT="before-upgrade")
    assert code == 0 and "ok    database:" in out and f"schema '{fresh}' not created yet" in out, out
    assert p.services.sql("SELECT to_regnamespace(%s)", (fresh,))[0][0] is None

    assert p.cli(["migrate"]).returncode == 0
    p.services.sql("INSERT INTO eos_connector.savepoints (name, pipeline, offsets) VALUES (%s, 'old', %s)",
                   (f"sp-{p.name}", f'[["{p.topic}", 0, 5], ["{p.topic}", 1, 7]]'))
    before = bookkeeping_contents(p)
    code, out = check(p, START_FROM_SAVEPOINT=f"sp-{p.name}")
    assert code == 0, out
    assert bookkeeping_contents(p) == before and p.offsets() == {}
