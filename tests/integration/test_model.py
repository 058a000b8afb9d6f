"""The learned model end to end on the real stack: the daemon logs a vector per decision,
training registers and promotes a model, the next daemon scores with it (its exact
predictions), a model of another feature schema is refused, and the CLI reads the
registry."""

from __future__ import annotations

import itertools
import json
from array import array
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest

from detectors.blocklist import LabelRow
from detectors.features import NAMES, SCHEMA_VERSION, TrainingRecord
from fraudgraph import connect, model_service
from fraudgraph.settings import Settings
from ingest import kafka
from ingest.generator import Generator, GeneratorConfig
from ingest.transaction import Transaction, encode
from learned.scorer import Scorer
from learned.training import NotEnoughLabels
from storage import models as registry
from tests.integration.cli_helpers import run_cli
from tests.integration.test_daemon import decisions, produce, run_daemon, scratch

pytestmark = pytest.mark.integration
FIRST, LATER = 6000, 800


def stream(unique: str) -> tuple[list[Transaction], dict[str, int]]:
    """A generated stream with ids of this test; its frauds reported a minute after."""
    txs, frauds = [], {}
    for tx, scenario in itertools.islice(Generator(GeneratorConfig(seed=5)), FIRST + LATER):
        tx = msgspec.structs.replace(tx, transaction_id=f"{unique}-{tx.transaction_id}")
        txs.append(tx)
        if scenario is not None:
            frauds[tx.transaction_id] = tx.event_ms + 60_000
    return txs, frauds


def env_of(settings: Settings) -> dict[str, str]:
    return {"FRAUDGRAPH_POSTGRES_SCHEMA": settings.postgres.schema,
            "FRAUDGRAPH_TOPIC_TRAINING": settings.topics.training}


def test_the_daemon_learns_from_its_own_logged_vectors(stack: Settings, unique: str) -> None:
    settings = scratch(stack, unique, partitions=1)
    txs, frauds = stream(unique)
    store = connect.blocklist(settings)
    try:
        # cold start: no model, the rules decide, every vector is logged
        done = run_cli("model", "train", "--label-delay", "1h", env=env_of(settings))
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "no logged feature vectors" in done.stderr
        produce(settings, [encode(t) for t in txs[:FIRST]])
        run_daemon(settings, unique, FIRST)
        first = decisions(settings)
        assert len(first) == FIRST and {r.model_version for r in first.values()} == {None}
        logged = model_service.read_logged(settings)
        assert sorted(logged.ids) == sorted(first)

        # train and promote: the frauds known a minute after each happened
        with pytest.raises(NotEnoughLabels):
            model_service.train(store, logged, {}, model_service.TrainRequest(
                label_delay_ms=3_600_000, capacity=10))
        trained = model_service.train(store, logged, frauds, model_service.TrainRequest(
            label_delay_ms=3_600_000, capacity=10))
        assert trained.promoted and trained.champion is None
        champion = registry.champion(store.conn, registry.RISK)
        assert champion is not None and champion.version == trained.version
        assert champion.config["schema"] == SCHEMA_VERSION

        # the next transactions are scored by the model: exactly its predictions
        produce(settings, [encode(t) for t in txs[FIRST:]])
        run_daemon(settings, unique, LATER)
        later = {k: r for k, r in decisions(settings).items() if k not in first}
        assert len(later) == LATER
        vectors = {m.key().decode(): msgspec.json.decode(m.value(), type=TrainingRecord)
                   for m in kafka.read_all(settings.kafka.bootstrap, settings.topics.training)}
        scorer = Scorer(trained.artifact.model, trained.artifact.columns, NAMES)
        modelled = [r for r in later.values() if r.model_version is not None]
        assert modelled and {r.model_version for r in modelled} == {trained.version}
        matrix = np.stack([np.frombuffer(vectors[r.transaction_id].vector, np.float32)
                           for r in modelled])
        assert [r.score for r in modelled] == [round(float(p), 6)
                                               for p in scorer.predict(matrix)]
        review = trained.artifact.review
        for r in modelled:
            assert r.decision == ("allow" if r.score < review else
                                  "block" if r.score >= trained.artifact.block else "review")
            if r.decision != "allow":
                assert r.reasons[0].code == "model" and trained.version in r.reasons[0].detail
        certain = [r for r in later.values() if r.model_version is None]
        assert all(r.reasons[0].code in ("blocklist_card", "blocklist_user") for r in certain)
        assert len(array("f", vectors[modelled[0].transaction_id].vector)) == len(NAMES)
    finally:
        store.close()


def test_a_model_of_another_feature_schema_is_refused(stack: Settings, unique: str) -> None:
    settings = scratch(stack, unique, partitions=1)
    store = connect.blocklist(settings)
    try:
        old = model_service.Artifact(SCHEMA_VERSION - 1, NAMES, NAMES, "tree", 0.1, 0.2, 10, {})
        row = registry.ModelRow("m-old", datetime.now(UTC), 0, 1, 1, 10, 0.9, {},
                                {"schema": SCHEMA_VERSION - 1}, "", False, None)
        registry.record(store.conn, row, registry.RISK, old.dumps())
        registry.promote(store.conn, "m-old", registry.RISK)
        txs, _ = stream(unique)
        produce(settings, [encode(t) for t in txs[:200]])
        run_daemon(settings, unique, 200)
        assert {r.model_version for r in decisions(settings).values()} == {None}
        listed = run_cli("model", "models", "--format", "json", env=env_of(settings))
        assert listed.returncode == 0, listed.stderr
        assert [(m["version"], m["champion"]) for m in json.loads(listed.stdout)] == [
            ("m-old", True)]
        evaluated = run_cli("model", "evaluate", env=env_of(settings))
        assert evaluated.returncode == 1 and "Traceback" not in evaluated.stderr
        assert f"feature schema v{SCHEMA_VERSION - 1}" in evaluated.stderr
        assert "retrain" in evaluated.stderr
    finally:
        store.close()


def test_training_reads_the_labels_as_they_stood_at_its_time(stack: Settings,
                                                             unique: str) -> None:
    """A later report (a retraction, a second report) never changes what a training as
    of an earlier time reads: the reports are kept as they came."""
    settings = scratch(stack, unique, partitions=1)
    store = connect.blocklist(settings)
    day = "2026-01-0{}T00:00:00Z"
    try:
        store.record_labels([LabelRow("a", "fraud", "chargeback", day.format(2)),
                             LabelRow("b", "fraud", "chargeback", day.format(2)),
                             LabelRow("c", "genuine", "review", day.format(2))])
        store.record_labels([LabelRow("a", "genuine", "review", day.format(5)),
                             LabelRow("b", "fraud", "issuer", day.format(6)),
                             LabelRow("c", "fraud", "issuer", day.format(7))])
        jan = 1_767_225_600_000
        d = 86_400_000
        assert store.fraud_reports(jan + 3 * d) == {"a": jan + d, "b": jan + d}
        assert store.fraud_reports(jan + 8 * d) == {"b": jan + d, "c": jan + 6 * d}
        assert store.fraud_reports() == store.fraud_reports(jan + 8 * d)
        assert store.fraud_reports(jan) == {}
    finally:
        store.close()
