"""The GNN end to end on the real stack: a generated stream projected and decided (its
fraud labels applied by the daemon), `fraudgraph gnn train` and `gnn score` as an
operator runs them, and the daemon deciding with the scores afterwards."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from pathlib import Path
from typing import Any

import msgspec

from detectors import config as detector_config
from fraudgraph import connect
from fraudgraph.settings import Settings
from fraudgraph.stream import daemon
from graph.projection import clear_graph
from ingest import kafka
from ingest.generator import Generator, GeneratorConfig
from ingest.publish import Publisher
from ingest.runs import KafkaSink, generate
from ingest.transaction import DecoderConfig, encode
from storage import models as registry
from tests.integration.cli_helpers import run_cli
from tests.integration.test_crash import env_for
from tests.integration.test_daemon import decisions, produce, scratch
from tests.integration.test_projection import run_projector

COUNT = 20_000
CONFIG = GeneratorConfig(seed=11, users=1500, sites=200, fraud_rate=0.03)
FLAG = 0.5


def risk(driver: Any) -> dict[tuple[str, str], tuple[float, str]]:
    records, _, _ = driver.execute_query(
        "MATCH (n) WHERE (n:Card OR n:User OR n:Device) AND n.risk_score IS NOT NULL "
        "RETURN labels(n)[0] AS label, n.id AS id, n.risk_score AS score, n.risk_model AS model")
    return {(r["label"], r["id"]): (r["score"], r["model"]) for r in records}


def target_count(driver: Any) -> int:
    records, _, _ = driver.execute_query(
        "MATCH (n) WHERE n:Card OR n:User OR n:Device RETURN count(n) AS n")
    return int(records[0]["n"])


def test_train_score_promote_and_decide_with_the_scores(
        stack: Settings, unique: str, tmp_path: Path) -> None:
    settings = scratch(stack, unique, partitions=2)
    driver = connect.neo4j(settings)
    store = connect.blocklist(settings)
    made: list[str] = []
    try:
        clear_graph(driver)
        sink = KafkaSink(Publisher(settings.kafka.bootstrap), settings.topics.transactions,
                         settings.topics.labels)
        generate(Generator(CONFIG), sink, tmp_path / "truth.jsonl", count=COUNT, duration=None,
                 rate=0, progress=lambda _n: None)
        run_projector(settings, f"proj-{unique}")
        options = daemon.DaemonOptions(group=f"test-daemon-{unique}", until_idle=3.0,
                                       graph_wait=None)
        config = detector_config.load("default")
        assert daemon.run(settings, config, options, DecoderConfig()).labels > 0
        env = env_for(settings)

        trained = run_cli("gnn", "train", "--epochs", "60", env=env)
        assert trained.returncode == 0, trained.stderr
        assert "promoted: AP" in trained.stdout and "baseline AP" in trained.stdout
        rows = registry.models(store.conn)
        made += [r.path for r in rows]
        assert [r.promoted for r in rows] == [True]
        champion = rows[0]
        assert champion.metric == champion.metrics["gnn"]["all"]["ap"] > 0
        assert set(champion.metrics) >= {"gnn", "baseline", "seconds"}
        assert (Path(champion.path) / "model.pt").exists()

        scored = run_cli("gnn", "score", "--flag-threshold", str(FLAG), env=env)
        assert scored.returncode == 0, scored.stderr
        scores = risk(driver)
        assert len(scores) == target_count(driver) > 0  # every card, user and device
        assert {model for _, model in scores.values()} == {champion.version}
        high = {(label.lower(), node_id) for (label, node_id), (s, _) in scores.items()
                if s >= FLAG}
        # the Browser style's highlight labels: high risk, confirmed fraud, blocked
        marked = {label: {(r["label"].lower(), r["id"]) for r in driver.execute_query(
            "MATCH (n) WHERE $marker IN labels(n) RETURN n.id AS id, "
            "head([l IN labels(n) WHERE l IN ['Card', 'User', 'Device']]) AS label",
            marker=label).records} for label in ("HighRisk", "ConfirmedFraud", "Blocked")}
        assert marked["HighRisk"] == high
        confirmed = marked["ConfirmedFraud"]
        assert confirmed and confirmed <= high  # confirmed fraud is certain: risk 1
        assert all(s == 1.0 for (label, i), (s, _) in scores.items()
                   if (label.lower(), i) in confirmed)
        suspects = high - confirmed  # what the GNN flags: the new suspects only
        assert marked["Blocked"] >= suspects
        listed = {(e.entity_type, e.entity_id): e for e in store.list(limit=1_000_000)}
        assert suspects and suspects <= set(listed)
        by_gnn = {key: e for key, e in listed.items() if e.source == "gnn"}
        assert by_gnn and set(by_gnn) <= suspects
        some = next(iter(by_gnn.values()))
        assert some.reason == "gnn_risk" and some.evidence["model_version"] == champion.version
        assert some.expires_at is not None  # a TTL
        alerts = [m.key().decode() for m in
                  kafka.read_all(settings.kafka.bootstrap, settings.topics.alerts)
                  if m.key().startswith(b"gnn:")]
        assert sorted(alerts) == sorted(f"gnn:{t}:{i}" for t, i in suspects)

        worse = run_cli("gnn", "train", "--epochs", "1", "--lr", "0.00001", env=env)
        assert worse.returncode == 0, worse.stderr
        assert "kept, not promoted" in worse.stdout
        rows = registry.models(store.conn)
        made += [r.path for r in rows]
        assert len(rows) == 2 and registry.champion(store.conn) == champion
        listed_models = run_cli("gnn", "models", env=env)
        assert champion.version in listed_models.stdout

        # the daemon reads the scores: a new purchase with the riskiest suspect card or
        # device says so (a reason from the entity's score on: the threshold is lowered
        # to it, this small graph's suspects being mostly users)
        (label, entity), (entity_risk, _) = max(
            ((k, v) for k, v in scores.items()
             if k[0] in ("Card", "Device") and (k[0].lower(), k[1]) not in confirmed),
            key=lambda kv: kv[1][0])
        assert entity_risk > 0.05
        config = dataclasses.replace(config, graph=dataclasses.replace(
            config.graph, gnn_threshold=min(config.graph.gnn_threshold, entity_risk * 0.9)))
        field = "card_id" if label == "Card" else "device_id"
        template = next(tx for tx, _ in itertools.islice(Generator(CONFIG), COUNT)
                        if getattr(tx, field) == entity)
        # the scores count from the time they are as of (the newest event or label report
        # they were computed from): a purchase an hour after it
        as_of = driver.execute_query(f"MATCH (n:{label} {{id: $id}}) RETURN n.risk_scored_ms "
                                     "AS ms", id=entity).records[0]["ms"]
        assert as_of >= template.event_ms
        late = msgspec.structs.replace(template, transaction_id=f"{unique}-after-gnn",
                                       event_ms=as_of + 3_600_000)
        produce(settings, [encode(late)])
        run_projector(settings, f"proj-{unique}")
        daemon.run(settings, config, options, DecoderConfig())
        reasons = {r.code for r in decisions(settings)[late.transaction_id].reasons}
        assert f"gnn_{label.lower()}" in reasons
    finally:
        store.close()
        driver.close()
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
