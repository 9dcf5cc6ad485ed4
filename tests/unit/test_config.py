"""Settings: every variable validated, every problem reported at once, secrets masked."""

import pytest

from connector.config import Settings
from connector.environment import redact_url
from connector.errors import ConfigError
from connector.routing import parse_qualified_name

BASE = {
    "KAFKA_BOOTSTRAP_SERVERS": "k1:9092",
    "KAFKA_TOPICS": "a, b",
    "DATABASE_URL": "postgresql://app:s3cret@db:5432/app",
    "SINK_TABLE": "public.events",
}


def test_defaults_and_passthrough():
    """Unset variables take their documented defaults; other KAFKA_* reach librdkafka."""
    s = Settings.from_env({**BASE, "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_SASL_PASSWORD": "pw"})
    assert s.kafka_topics == ("a", "b")
    assert s.connector_name == "eos-connector" and s.group_id == "eos-connector"
    assert (s.sink_mode, s.state_backend, s.checkpoint_interval_ms) == ("append", "memory", 1000)
    assert s.connector_schema == "eos_connector" and s.connector_auto_migrate is True
    conf = s.consumer_config()
    assert conf["session.timeout.ms"] == "6000" and conf["sasl.password"] == "pw"
    assert conf["auto.offset.reset"] == "earliest" and conf["enable.auto.commit"] == "false"
    assert conf["group.id"] == "eos-connector" and conf["bootstrap.servers"] == "k1:9092"


def test_group_id_and_overridden_reset():
    s = Settings.from_env({**BASE, "KAFKA_GROUP_ID": "g1", "KAFKA_AUTO_OFFSET_RESET": "latest"})
    assert s.consumer_config()["group.id"] == "g1"
    assert s.consumer_config()["auto.offset.reset"] == "latest"


def test_every_problem_listed_at_once():
    """Four bad variables produce one error naming all four."""
    env = {"KAFKA_TOPICS": "t", "DATABASE_URL": "postgresql://x", "SINK_TABLE": "t",
           "SINK_MODE": "merge", "CHECKPOINT_INTERVAL_MS": "soon", "STATE_BACKEND": "s3",
           "KAFKA_ENABLE_AUTO_COMMIT": "true"}
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    text = str(err.value)
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "SINK_MODE", "CHECKPOINT_INTERVAL_MS", "STATE_BACKEND",
                 "KAFKA_ENABLE_AUTO_COMMIT"):
        assert name in text
    assert len(err.value.problems) == 5
    assert "'append', 'upsert' or 'insert-ignore'" in text


def test_cross_field_problems():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "SINK_KEY_COLUMNS": "id", "DATABASE_URL": "mysql://u:pw@h/db",
                           "SINK_TABLE": "a.b.c"})
    assert len(err.value.problems) == 3
    assert "pw" not in str(err.value)


def test_secrets_never_shown():
    """repr, str and redacted() mask the database password and Kafka secrets."""
    s = Settings.from_env({**BASE, "KAFKA_SASL_PASSWORD": "hunter2", "KAFKA_SSL_KEY_PASSWORD": "k3y"})
    for shown in (repr(s), str(s), str(s.redacted())):
        assert "s3cret" not in shown and "hunter2" not in shown and "k3y" not in shown
    assert "app:***@db" in repr(s)


def test_bad_secret_value_not_echoed():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "DATABASE_URL": "oracle://u:topsecret@h/db"})
    assert "topsecret" not in str(err.value)


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u@h/db?password=p&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
    ("host=h password=p dbname=d", "host=h password=*** dbname=d"),
    ("host=h password='a b\\'c d' dbname=d", "host=h password=*** dbname=d"),
    ("postgresql:///db?host=/tmp/x", "postgresql:///db?host=/tmp/x"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("text, parsed", [
    ("events", (None, "events")),
    ("Events", (None, "events")),
    ("s.t", ("s", "t")),
    ('"My Schema"."Odd.Table"', ("My Schema", "Odd.Table")),
    ('"we""ird;drop"', (None, 'we"ird;drop')),
])
def test_parse_qualified_name(text, parsed):
    """PostgreSQL's rules: quoted parts keep case and dots, unquoted ones fold."""
    assert parse_qualified_name(text) == parsed


@pytest.mark.parametrize("text", ["a.b.c", "a.", ".a", '"unterminated', "", '"a";drop'])
def test_parse_qualified_name_refuses(text):
    with pytest.raises(ValueError):
        parse_qualified_name(text)


def test_fault_spec_validated():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "CONNECTOR_FAULT": "nowhere:1"})
    assert "CONNECTOR_FAULT" in str(err.value)
    assert str(Settings.from_env({**BASE, "CONNECTOR_FAULT": "after_db_commit:2"}).connector_fault) == \
        "after_db_commit:2:kill"


def test_secrets_from_files(tmp_path):
    """DATABASE_PASSWORD_FILE and KAFKA_<NAME>_FILE: the file's content (one trailing
    newline dropped) becomes the value; it is masked like any secret."""
    (tmp_path / "db").write_text("pa ss'word\n")
    (tmp_path / "sasl").write_text("kafka-secret")
    s = Settings.from_env({**BASE, "DATABASE_PASSWORD_FILE": str(tmp_path / "db"),
                           "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "sasl")})
    assert s.database_password == "pa ss'word" and s.consumer_config()["sasl.password"] == "kafka-secret"
    assert "password='pa ss\\'word'" in s.libpq_url
    shown = repr(s) + str(s.redacted())
    assert "pa ss" not in shown and "kafka-secret" not in shown and "s3cret" not in shown


def test_secret_file_problems_named(tmp_path):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "DATABASE_PASSWORD_FILE": str(tmp_path / "missing"),
                           "KAFKA_SASL_PASSWORD": "x", "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing"),
                           "SINK_MODE": "merge"})
    problems = err.value.problems
    assert any(p.startswith("DATABASE_PASSWORD_FILE=") and "cannot read the file: No such file" in p for p in problems)
    assert "KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set; set only one" in problems
    assert any(p.startswith("SINK_MODE=") for p in problems)  # reported together


def test_restart_strategy_setting():
    assert str(Settings.from_env({**BASE, "RESTART_STRATEGY": "attempts=3,initial=1s,max=4s"}).restart_strategy) \
        == "attempts=3,initial=1000ms,max=4000ms"
    with pytest.raises(ConfigError, match="RESTART_STRATEGY='attempts=x'"):
        Settings.from_env({**BASE, "RESTART_STRATEGY": "attempts=x"})


def test_error_tolerance_settings():
    settings = Settings.from_env({**BASE, "ERRORS_TOLERANCE": "ALL", "ERRORS_DEADLETTER_TOPIC": "dlq"})
    assert settings.errors_tolerance == "all" and settings.errors_deadletter_topic == "dlq"
    assert Settings.from_env(BASE).errors_tolerance == "none"
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "ERRORS_TOLERANCE": "some"})
    assert "ERRORS_TOLERANCE='some'" in str(err.value) and "'none' or 'all'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "ERRORS_DEADLETTER_TOPIC": "dlq"})
    assert "ERRORS_DEADLETTER_TOPIC is set but ERRORS_TOLERANCE is not 'all'" in str(err.value)


def test_value_format_settings():
    """A registry format needs SCHEMA_REGISTRY_URL; SCHEMA_REGISTRY_<NAME> passes through
    to the registry client, credentials masked wherever settings are shown."""
    settings = Settings.from_env({**BASE, "VALUE_FORMAT": "Avro", "SCHEMA_REGISTRY_URL": "https://sr:8081",
                                  "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "user:sr-secret"})
    assert settings.value_format == "avro"
    assert settings.registry_config() == {"url": "https://sr:8081", "basic.auth.user.info": "user:sr-secret"}
    assert "sr-secret" not in repr(settings)
    in_url = Settings.from_env({**BASE, "VALUE_FORMAT": "avro", "SCHEMA_REGISTRY_URL": "https://u:pw9@sr:8081"})
    assert "pw9" not in repr(in_url)
    with pytest.raises(ConfigError) as err:  # the registry client refuses both at once: a settings error
        Settings.from_env({**BASE, "VALUE_FORMAT": "avro", "SCHEMA_REGISTRY_URL": "https://u:pw9@sr:8081",
                           "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "user:sr-secret"})
    assert "holds credentials and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO" in str(err.value)
    assert Settings.from_env(BASE).registry_config() is None
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "VALUE_FORMAT": "protobuf"})
    assert "VALUE_FORMAT='protobuf' needs SCHEMA_REGISTRY_URL" in str(err.value)
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "VALUE_FORMAT": "xml", "SCHEMA_REGISTRY_URL": "http://sr"})
    assert "VALUE_FORMAT='xml'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "SCHEMA_REGISTRY_URL": "http://sr"})
    assert "VALUE_FORMAT and KEY_FORMAT are 'json'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "KEY_FORMAT": "avro"})
    assert "KEY_FORMAT='avro' needs SCHEMA_REGISTRY_URL" in str(err.value)
    keyed = Settings.from_env({**BASE, "KEY_FORMAT": "Avro", "SCHEMA_REGISTRY_URL": "http://sr"})
    assert (keyed.key_format, keyed.value_format) == ("avro", "json")


def test_a_variable_that_fails_alone_hides_no_other_problem():
    """Field errors and the checks across variables come in one error, whatever fails first."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "SINK_TABLE": '"unterminated', "CHECKPOINT_INTERVAL_MS": "-1",
                           "DATABASE_URL": "mysql://u:pw@db/app", "SINK_KEY_COLUMNS": "id", "KAFKA_TOPICS": ""})
    text = str(err.value)
    for expected in ("CHECKPOINT_INTERVAL_MS", "SINK_TABLE='\"unterminated'", "DATABASE_URL='mysql://u:***@db/app'",
                     "SINK_KEY_COLUMNS is set but SINK_MODE", "KAFKA_TOPICS"):
        assert expected in text, expected
    assert len(err.value.problems) == 5


@pytest.mark.parametrize("url, problem", [
    ("postgresql://app:pw@db/app?sslmode=bogus", "sslmode='bogus' is not one of disable"),
    ("host=db sslmode=requir password=pw", "sslmode='requir'"),
    ("postgresql://app:pa%zzsecret@db/app", "libpq cannot parse it"),
    ("postgresql://db/app?no_such_option=1", "libpq cannot parse it"),
])
def test_a_database_url_libpq_refuses_is_a_settings_error(url, problem):
    """Not an outage retried ten times: named at once, the password never shown."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "DATABASE_URL": url})
    assert problem in str(err.value) and "secret" not in str(err.value) and "pw" not in str(err.value)


def test_consumer_group_protocol_leaves_the_session_to_the_broker():
    """KAFKA_GROUP_PROTOCOL=consumer (KIP-848): no session or heartbeat default is passed (librdkafka
    refuses it with that protocol); setting a classic-only variable is a settings error
    naming it; an unknown protocol is one too."""
    s = Settings.from_env({**BASE, "KAFKA_GROUP_PROTOCOL": "consumer"})
    conf = s.consumer_config()
    assert conf["group.protocol"] == "consumer" and not {"session.timeout.ms", "heartbeat.interval.ms"} & set(conf)
    classic = Settings.from_env(BASE).consumer_config()
    assert classic["session.timeout.ms"] == "10000" and classic["heartbeat.interval.ms"] == "1000"
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**BASE, "KAFKA_GROUP_PROTOCOL": "consumer", "KAFKA_SESSION_TIMEOUT_MS": "6000",
                           "KAFKA_PARTITION_ASSIGNMENT_STRATEGY": "range"})
    assert len(err.value.problems) == 2
    assert all("not allowed with KAFKA_GROUP_PROTOCOL=consumer" in p for p in err.value.problems)
    with pytest.raises(ConfigError, match="KAFKA_GROUP_PROTOCOL='kip848': allowed: classic, consumer"):
        Settings.from_env({**BASE, "KAFKA_GROUP_PROTOCOL": "kip848"})


def test_data_loss_policy_and_where_new_partitions_start():
    assert Settings.from_env(BASE).on_data_loss == "fail"
    assert Settings.from_env({**BASE, "ON_DATA_LOSS": "Skip"}).on_data_loss == "skip"
    with pytest.raises(ConfigError, match="ON_DATA_LOSS"):
        Settings.from_env({**BASE, "ON_DATA_LOSS": "ignore"})
    with pytest.raises(ConfigError, match="KAFKA_AUTO_OFFSET_RESET='error': where a partition with no offset"):
        Settings.from_env({**BASE, "KAFKA_AUTO_OFFSET_RESET": "error"})
