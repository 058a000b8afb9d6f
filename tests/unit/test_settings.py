"""Settings: defaults, environment overrides, secrets handling."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fraudgraph.errors import ConfigError
from fraudgraph.settings import (
    ENV_DOCS,
    ensure_dev_secrets,
    load_settings,
    read_secrets_file,
    write_secrets_file,
)


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"FRAUDGRAPH_DATA_DIR": str(tmp_path / "data"),
            "FRAUDGRAPH_CACHE_DIR": str(tmp_path / "cache"), **extra}


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(env_for(tmp_path))
    assert s.profile == "dev"
    assert (s.kafka.port, s.kafka.controller_port, s.kafka.bootstrap) == (
        9092, 9093, "127.0.0.1:9092")
    assert (s.neo4j.bolt_port, s.neo4j.http_port, s.neo4j.uri) == (
        7687, 7474, "bolt://127.0.0.1:7687")
    assert s.postgres.port == 5433 and s.postgres.managed
    assert s.topics.all() == ("transactions", "decisions", "fraud-alerts", "training",
                              "fraud-labels", "transactions-dlq")
    assert s.neo4j.password is None
    assert s.neo4j.detail == "all"


def test_environment_overrides(tmp_path: Path) -> None:
    s = load_settings(env_for(
        tmp_path, FRAUDGRAPH_KAFKA_PORT="19092", FRAUDGRAPH_NEO4J_BOLT_PORT="17687",
        FRAUDGRAPH_KAFKA_PARTITIONS="8", FRAUDGRAPH_TOPIC_DLQ="dead-letters",
        FRAUDGRAPH_NEO4J_PASSWORD="s3cret-pass-1", FRAUDGRAPH_POSTGRES_DSN="host=db dbname=x",
        FRAUDGRAPH_GRAPH_DETAIL="flagged"))
    assert s.neo4j.detail == "flagged"
    assert s.kafka.bootstrap == "127.0.0.1:19092" and s.kafka.partitions == 8
    assert s.neo4j.uri == "bolt://127.0.0.1:17687"
    assert s.topics.dlq == "dead-letters"
    assert s.neo4j.password == "s3cret-pass-1"
    assert not s.postgres.managed and s.postgres.dsn() == "host=db dbname=x"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("FRAUDGRAPH_KAFKA_PORT", "ninety", "is not an integer"),
    ("FRAUDGRAPH_KAFKA_PARTITIONS", "0", "must be positive"),
    ("FRAUDGRAPH_PROFILE", "staging", "expected one of dev, prod"),
    ("FRAUDGRAPH_GRAPH_DETAIL", "some", "expected one of all, flagged"),
    ("FRAUDGRAPH_NEO4J_PASSWORD", "neo4j", "default or empty password"),
    ("FRAUDGRAPH_POSTGRES_PASSWORD", "postgres", "default or empty password"),
])
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str,
                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env_for(tmp_path, **{name: value}))
    assert name in str(info.value)


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    s = load_settings(env_for(tmp_path, FRAUDGRAPH_NEO4J_PASSWORD="very-secret-1",
                              FRAUDGRAPH_POSTGRES_PASSWORD="very-secret-2"))
    assert "very-secret" not in repr(s)


def test_dev_profile_generates_secrets_into_a_0600_file(tmp_path: Path) -> None:
    s = ensure_dev_secrets(load_settings(env_for(tmp_path)))
    assert s.neo4j.password and s.postgres.password and s.postgres.superuser_password
    assert len({s.neo4j.password, s.postgres.password, s.postgres.superuser_password}) == 3
    assert stat.S_IMODE(s.secrets_path.stat().st_mode) == 0o600
    # Loading again reads the same secrets; generating again changes nothing.
    again = load_settings(env_for(tmp_path))
    assert again.neo4j.password == s.neo4j.password
    assert ensure_dev_secrets(again) == again
    assert s.postgres.dsn().endswith("connect_timeout=5")


def test_environment_secret_wins_over_the_file(tmp_path: Path) -> None:
    ensure_dev_secrets(load_settings(env_for(tmp_path)))
    s = load_settings(env_for(tmp_path, FRAUDGRAPH_NEO4J_PASSWORD="from-the-env-1"))
    assert s.neo4j.password == "from-the-env-1"


def test_prod_profile_never_generates_secrets(tmp_path: Path) -> None:
    s = load_settings(env_for(tmp_path, FRAUDGRAPH_PROFILE="prod"))
    with pytest.raises(ConfigError, match="only generated in the dev profile"):
        ensure_dev_secrets(s)
    assert not s.secrets_path.exists()
    with pytest.raises(ConfigError, match="FRAUDGRAPH_POSTGRES_PASSWORD is not set"):
        s.postgres.dsn()


def test_a_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    write_secrets_file(path, {"NEO4J_PASSWORD": "abc-123-xyz"})
    assert read_secrets_file(path) == {"NEO4J_PASSWORD": "abc-123-xyz"}
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secrets_file(path)


def test_malformed_secrets_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("# comment\nNEO4J_PASSWORD=ok-pass-1\nnot a pair\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"secrets.env:3: expected KEY=VALUE"):
        read_secrets_file(path)


def test_every_documented_variable_is_read_by_load_settings() -> None:
    source = (Path(__file__).parents[2] / "fraudgraph" / "settings.py").read_text()
    body = source[source.index("def load_settings"):]
    for name in ENV_DOCS:
        short = name.removeprefix("FRAUDGRAPH_")
        assert (f'"{name}"' in body or f'secret("{short}")' in body
                or name.startswith("FRAUDGRAPH_TOPIC_")), name


def test_generated_passwords_never_look_like_options() -> None:
    from fraudgraph.settings import generate_password

    passwords = [generate_password() for _ in range(500)]
    assert all(p.isalnum() and len(p) == 24 for p in passwords)  # no leading "-" for CLIs
    assert len(set(passwords)) == 500


# -- Kafka client security ----------------------------------------------------------------

SASL_SSL = {"FRAUDGRAPH_KAFKA_BOOTSTRAP": "kafka-1.internal:9093,kafka-2.internal:9093",
            "FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "FRAUDGRAPH_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "FRAUDGRAPH_KAFKA_SASL_USERNAME": "fraudgraph",
            "FRAUDGRAPH_KAFKA_SASL_PASSWORD": "kafka-very-secret-1",
            "FRAUDGRAPH_KAFKA_SSL_CA_LOCATION": "/etc/fraudgraph/kafka-ca.pem"}


def test_kafka_security_settings_become_the_client_config(tmp_path: Path) -> None:
    s = load_settings(env_for(tmp_path, FRAUDGRAPH_PROFILE="prod", **SASL_SSL))
    assert s.kafka.client_security() == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "fraudgraph", "sasl.password": "kafka-very-secret-1",
        "ssl.ca.location": "/etc/fraudgraph/kafka-ca.pem"}
    assert "kafka-very-secret" not in repr(s)
    assert load_settings(env_for(tmp_path)).kafka.client_security() == {
        "security.protocol": "PLAINTEXT"}


def test_the_sasl_password_may_come_from_the_secrets_file(tmp_path: Path) -> None:
    write_secrets_file(tmp_path / "data" / "secrets.env",
                       {"KAFKA_SASL_PASSWORD": "from-the-file-1"})
    env = {k: v for k, v in SASL_SSL.items() if k != "FRAUDGRAPH_KAFKA_SASL_PASSWORD"}
    s = load_settings(env_for(tmp_path, **env))
    assert s.kafka.client_security()["sasl.password"] == "from-the-file-1"


@pytest.mark.parametrize(("change", "message"), [
    ({"FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL": "TLS"}, "expected one of PLAINTEXT, SSL"),
    ({"FRAUDGRAPH_KAFKA_SASL_PASSWORD": ""},
     "FRAUDGRAPH_KAFKA_SASL_PASSWORD is not set, and .*SASL_SSL needs it"),
    ({"FRAUDGRAPH_KAFKA_SASL_MECHANISM": "GSSAPI"}, "expected one of PLAIN, SCRAM"),
    ({"FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL": "SSL"},
     "FRAUDGRAPH_KAFKA_SASL_MECHANISM is set but .*=SSL does not use it"),
    ({"FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
     "FRAUDGRAPH_KAFKA_SSL_CA_LOCATION is set but .*=SASL_PLAINTEXT does not use it"),
    ({"FRAUDGRAPH_KAFKA_SASL_PASSWORD": "password"}, "default or empty password"),
])
def test_kafka_security_settings_that_do_not_fit_are_refused(
        tmp_path: Path, change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env_for(tmp_path, **{**SASL_SSL, **change}))


@pytest.mark.parametrize(("bootstrap", "protocol"), [
    ("kafka.internal:9092", "PLAINTEXT"),
    ("127.0.0.1:9092,10.0.0.7:9092", "PLAINTEXT"),
    ("PLAINTEXT://kafka.internal:9092", ""),
    ("[2001:db8::1]:9092", "PLAINTEXT"),
    ("kafka.internal:9092", "SASL_PLAINTEXT"),
])
def test_prod_refuses_an_unencrypted_remote_broker(tmp_path: Path, bootstrap: str,
                                                   protocol: str) -> None:
    env = {"FRAUDGRAPH_KAFKA_BOOTSTRAP": bootstrap, "FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol == "SASL_PLAINTEXT":
        env.update({k: v for k, v in SASL_SSL.items() if "_SASL_" in k})
    with pytest.raises(ConfigError) as info:
        load_settings(env_for(tmp_path, FRAUDGRAPH_PROFILE="prod", **env))
    message = str(info.value)
    assert "\n" not in message and "prod profile refuses" in message
    assert "set FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in message
    # The dev profile lets it be (a developer's own broker); TLS makes prod accept it.
    load_settings(env_for(tmp_path, **env))
    load_settings(env_for(tmp_path, FRAUDGRAPH_PROFILE="prod", FRAUDGRAPH_KAFKA_BOOTSTRAP=bootstrap,
                          FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL="SSL"))


@pytest.mark.parametrize("bootstrap", [
    "127.0.0.1:9092", "localhost:9092", "127.0.0.2:19092,localhost", "[::1]:9092",
    "PLAINTEXT://127.0.0.1:9092"])
def test_prod_accepts_plaintext_on_loopback(tmp_path: Path, bootstrap: str) -> None:
    s = load_settings(env_for(tmp_path, FRAUDGRAPH_PROFILE="prod",
                              FRAUDGRAPH_KAFKA_BOOTSTRAP=bootstrap))
    assert s.kafka.security_protocol == "PLAINTEXT"
