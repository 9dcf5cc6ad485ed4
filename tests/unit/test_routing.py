"""Routing: topic -> table by `${topic}` template or SINK_TABLE_MAP, per-table settings,
and every routing mistake a settings error naming its variable."""

import pytest

from connector.config import Settings
from connector.errors import ConfigError, RouteError
from connector.fields import FieldRules
from connector.routing import Routes, Subscription, TableConfig, env_name, safe_identifier

BASE = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "DATABASE_URL": "postgresql://db/app"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def problems(**env: str) -> str:
    with pytest.raises(ConfigError) as err:
        settings(**env)
    return str(err.value)


@pytest.mark.parametrize("template, topic, table", [
    ("raw.${topic}", "orders.v1-EU", ("raw", "orders_v1_eu")),  # unquoted: folded as PostgreSQL folds it
    ('"Raw"."${topic}"', "orders.v1-EU", ("Raw", "orders_v1_EU")),  # quoted: the case kept
    ("${topic}_log", "9lives", (None, "9lives_log")),  # a leading digit is fine: names are always quoted in SQL
    ("events", "anything", (None, "events")),  # no placeholder: every topic into one table
])
def test_a_template_makes_a_safe_identifier(template, topic, table):
    assert Routes(template).table_for(topic) == table


def test_the_map_wins_over_the_template():
    routes = settings(KAFKA_TOPICS="a.b,c", SINK_TABLE="raw.${topic}", SINK_TABLE_MAP="a.b = audit.\"AB\"").routes()
    assert routes.table_for("a.b") == ("audit", "AB") and routes.table_for("c") == ("raw", "c")


def test_a_name_too_long_for_postgresql_is_refused_naming_the_topic():
    topic = "t" * 70
    with pytest.raises(RouteError, match=f"topic '{topic}'.*longer than PostgreSQL's 63 bytes"):
        Routes("${topic}").table_for(topic)
    assert f"topic '{topic}'" in problems(KAFKA_TOPICS=topic, SINK_TABLE="${topic}")


def test_env_name_rule():
    assert env_name(("raw", "orders_v1")) == "RAW_ORDERS_V1"
    assert env_name((None, "Événements-2")) == "_V_NEMENTS_2"
    assert safe_identifier("a.b-c_d") == "a_b_c_d"


def test_per_table_settings_override_the_plain_ones():
    s = settings(KAFKA_TOPICS="orders,clicks", SINK_TABLE="raw.${topic}", SINK_METADATA_COLUMNS="offset",
                 SINK_TABLE_RAW_ORDERS_MODE="Upsert", SINK_TABLE_RAW_ORDERS_KEY_COLUMNS="id, region",
                 SINK_TABLE_RAW_ORDERS_METADATA_COLUMNS="topic=source")
    routes = s.routes()
    assert routes.config_for("orders") == TableConfig(("raw", "orders"), "upsert", ("id", "region"), (),
                                                      (("topic", "source"),))
    assert routes.config_for("clicks") == TableConfig(("raw", "clicks"), "append", (), (), (("offset", "offset"),))


def test_regex_subscription():
    s = settings(KAFKA_TOPICS_REGEX=r"orders\..*", SINK_TABLE="raw.${topic}")
    assert s.subscription.patterns() == [r"^orders\..*"]
    assert "orders.eu" in s.subscription and "refunds" not in s.subscription
    assert "topics.regex" not in s.consumer_config()  # the connector's own setting, not librdkafka's
    assert str(Subscription(("a", "b"))) == "a, b"


@pytest.mark.parametrize("env, expected", [
    ({"KAFKA_TOPICS": "a", "KAFKA_TOPICS_REGEX": "a.*", "SINK_TABLE": "t"}, "both set"),
    ({"SINK_TABLE": "t"}, "KAFKA_TOPICS is required but not set (or KAFKA_TOPICS_REGEX)"),
    ({"KAFKA_TOPICS_REGEX": "a(", "SINK_TABLE": "t"}, "KAFKA_TOPICS_REGEX='a(': Value error, not a regular"),
    ({"KAFKA_TOPICS": "a"}, "SINK_TABLE is required but not set (or SINK_TABLE_MAP)"),
    ({"KAFKA_TOPICS": "a,b", "SINK_TABLE_MAP": "a=x"}, "topic 'b' has no table"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_TABLE_MAP": "b=x"}, "routes topic 'b', which the pipeline"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_TABLE_MAP": "a=x,a=y"}, "topic 'a' is routed twice"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_TABLE_MAP": "a b=x"}, "'a b' is not a Kafka topic name"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE_MAP": "a=" + "x" * 64}, "is longer than 63 bytes"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "${table}"}, "the only placeholder is ${topic}"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_TABLE_T_KEY_COLUMNS": "id"},
     "SINK_TABLE_T_KEY_COLUMNS is set but SINK_MODE is 'append'"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_TABLE_T_MODE": "merge"}, "SINK_TABLE_T_MODE='merge': expected"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_FIELDS_INCLUDE": "a", "SINK_FIELDS_EXCLUDE": "b"},
     "SINK_FIELDS_INCLUDE and SINK_FIELDS_EXCLUDE are both set"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_FIELDS_RENAME": "a:b,c:b"}, "'b' named twice"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_FIELDS_RENAME": "a-b"}, "expected old:new, got 'a-b'"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_VERSION_COLUMN": "v"},
     "SINK_VERSION_COLUMN is set but SINK_MODE is not 'upsert'"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_MODE": "upsert", "SINK_TABLE_T_VERSION_COLUMN": "v",
      "SINK_ADDITIVE_COLUMNS": "n"}, "SINK_TABLE_T_VERSION_COLUMN and SINK_ADDITIVE_COLUMNS are both set"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_MODE": "insert-ignore", "SINK_ADDITIVE_COLUMNS": "n"},
     "SINK_ADDITIVE_COLUMNS is set but SINK_MODE is not 'upsert'"),
    ({"KAFKA_TOPICS": "a", "SINK_TABLE": "t", "SINK_TABLE_TYPO_MODE": "upsert"},
     "SINK_TABLE_TYPO_MODE: the pipeline has no table whose <NAME> is TYPO (its tables: T)"),
    ({"KAFKA_TOPICS_REGEX": ".*", "SINK_TABLE": "t", "ERRORS_TOLERANCE": "all", "ERRORS_DEADLETTER_TOPIC": "dlq"},
     "ERRORS_DEADLETTER_TOPIC 'dlq' is one of the topics the pipeline reads"),
])
def test_routing_mistakes_are_settings_errors(env, expected):
    assert expected in problems(**env)


def test_insert_ignore_takes_key_columns():
    s = settings(KAFKA_TOPICS="a", SINK_TABLE="t", SINK_MODE="insert-ignore", SINK_KEY_COLUMNS="id")
    assert s.routes().config_for("a") == TableConfig((None, "t"), "insert-ignore", ("id",))


def test_a_map_alone_routes_every_listed_topic():
    s = settings(KAFKA_TOPICS="a,b", SINK_TABLE_MAP="a=x,b=s.y", SINK_TABLE_S_Y_MODE="upsert")
    assert s.routes().config_for("b").mode == "upsert" and s.routes().table_for("a") == (None, "x")


@pytest.mark.parametrize("rules, column, field", [
    (FieldRules(), "a", "a"),
    (FieldRules(rename=(("uid", "user_id"),)), "user_id", "uid"),  # the renamed field fills its new column
    (FieldRules(rename=(("uid", "user_id"),)), "uid", None),  # and no longer its own
    (FieldRules(exclude=("secret",)), "secret", None),
    (FieldRules(include=("a",)), "b", None),
    (FieldRules(include=("uid",), rename=(("uid", "user_id"),)), "user_id", "uid"),  # include names fields
])
def test_which_field_fills_a_column(rules, column, field):
    assert rules.source(column) == field


def test_field_settings_reach_every_table():
    s = settings(KAFKA_TOPICS="a", SINK_TABLE="t", SINK_FIELDS_EXCLUDE="secret, token", SINK_FIELDS_RENAME="uid:user_id")
    assert s.routes().config_for("a").fields == FieldRules(None, ("secret", "token"), (("uid", "user_id"),))


def test_flatten_settings():
    assert settings(KAFKA_TOPICS="a", SINK_TABLE="t").routes().config_for("a").fields.flatten is None
    s = settings(KAFKA_TOPICS="a", SINK_TABLE="t", SINK_FLATTEN="true", SINK_FLATTEN_SEPARATOR="__")
    assert s.routes().config_for("a").fields.flatten == "__"
