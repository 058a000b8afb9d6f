"""Every Kafka client (producer, consumer, admin) gets the security settings, and the
SASL password never shows in a repr or a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from fraudgraph.settings import load_settings
from ingest import kafka

SECRET = "kafka-very-secret-1"
ENV = {"FRAUDGRAPH_KAFKA_BOOTSTRAP": "kafka.internal:9093",
       "FRAUDGRAPH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
       "FRAUDGRAPH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
       "FRAUDGRAPH_KAFKA_SASL_USERNAME": "fraudgraph",
       "FRAUDGRAPH_KAFKA_SASL_PASSWORD": SECRET,
       "FRAUDGRAPH_KAFKA_SSL_CA_LOCATION": "/etc/fraudgraph/kafka-ca.pem"}


class Recorder:
    """Stands in for confluent_kafka's client classes: records each client's config."""

    configs: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, conf: dict[str, Any]) -> Any:
        Recorder.configs.append((self.kind, dict(conf)))
        metadata = SimpleNamespace(brokers={1: object()}, topics={"transactions": object()})
        return SimpleNamespace(list_topics=lambda timeout=None: metadata,
                               create_topics=lambda *a, **k: {}, close=lambda: None)


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    Recorder.configs = []
    for kind in ("Producer", "Consumer", "AdminClient"):
        monkeypatch.setattr(kafka, kind, Recorder(kind))
    yield Recorder.configs
    kafka.use_security({})


def test_every_client_gets_the_security_settings(
        tmp_path: Path, clients: list[tuple[str, dict[str, Any]]]) -> None:
    settings = load_settings({"FRAUDGRAPH_DATA_DIR": str(tmp_path), **ENV})
    kafka.use_security(settings.kafka.client_security())
    bootstrap = settings.kafka.bootstrap
    kafka.producer(bootstrap)
    kafka.consumer(bootstrap, "group-1")
    assert kafka.broker_count(bootstrap) == 1
    kafka.ensure_topics(bootstrap, ["transactions"], partitions=1)
    kinds = [kind for kind, _ in clients]
    assert kinds == ["Producer", "Consumer", "AdminClient", "AdminClient"]
    for kind, conf in clients:
        assert conf["bootstrap.servers"] == "kafka.internal:9093", kind
        assert conf["security.protocol"] == "SASL_SSL", kind
        assert conf["sasl.mechanism"] == "SCRAM-SHA-256", kind
        assert (conf["sasl.username"], conf["sasl.password"]) == ("fraudgraph", SECRET), kind
        assert conf["ssl.ca.location"] == "/etc/fraudgraph/kafka-ca.pem", kind
    assert clients[0][1]["enable.idempotence"] is True  # the client's own settings stay
    assert clients[1][1]["enable.auto.commit"] is False


def test_without_security_clients_speak_plaintext(
        clients: list[tuple[str, dict[str, Any]]]) -> None:
    kafka.producer("127.0.0.1:9092")
    assert not any(key.startswith(("security.", "sasl.", "ssl.")) for key in clients[0][1])
    assert kafka.describe_security() == "security.protocol=PLAINTEXT (default)"


def test_the_password_is_never_shown_nor_logged(
        tmp_path: Path, clients: list[tuple[str, dict[str, Any]]],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings({"FRAUDGRAPH_DATA_DIR": str(tmp_path), **ENV})
    with caplog.at_level(logging.DEBUG):
        kafka.use_security(settings.kafka.client_security())
        kafka.producer(settings.kafka.bootstrap)
    assert "sasl.username=fraudgraph" in caplog.text  # it did log the settings ...
    assert SECRET not in caplog.text  # ... without the password
    assert "sasl.password=***" in kafka.describe_security()
    assert SECRET not in kafka.describe_security()
    assert SECRET not in repr(settings) and SECRET not in repr(settings.kafka)


def test_only_security_settings_are_taken(clients: list[tuple[str, dict[str, Any]]]) -> None:
    with pytest.raises(ValueError, match=r"not a Kafka security setting: group\.id"):
        kafka.use_security({"security.protocol": "SSL", "group.id": "hijack"})
