"""Train, evaluate, promote and score: what the ``fraudgraph gnn`` commands run.

* :func:`train` exports the graph, trains the GNN and the baseline on the same
  split, measures both on the validation entities (every entity not known as
  fraud at the cut-off, at the real prevalence: see :mod:`gnn.dataset`),
  registers the model and promotes it only if it beats the champion (measured
  again on this split);
* :func:`score` runs the champion over the whole graph, writes ``risk_score`` /
  ``risk_model`` / ``risk_scored_ms`` onto card, user and device nodes in batches,
  blocklists the entities at or above the flag threshold (source ``gnn``) and
  announces them on ``fraud-alerts`` (key ``gnn:<type>:<id>``).

``risk_scored_ms`` is the event time the scores are *as of*
(:func:`as_of_ms`): the newest event time of the exported graph, or the newest
label the model was shown if later (the ``--labels-until`` time when given), so
a transaction earlier than it never reads a score computed from its future.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import torch

import cypher
from detectors.blocklist import NewEntry
from detectors.pipeline import SINCE
from detectors.quality import average_precision, roc_auc
from fraudgraph import connect
from fraudgraph.feedback import blocklist_entities
from fraudgraph.settings import Settings
from gnn import dataset, registry
from gnn.dataset import TARGETS, GraphData, Split
from gnn.model import Artifact, Baseline, ModelConfig, Standardiser, build_gnn, hetero_data, schema
from gnn.model import scores as model_scores
from gnn.model import train as fit
from ingest.publish import Publisher

log = logging.getLogger(__name__)
ENTITY_TYPE = {"Card": "card", "User": "user", "Device": "device"}
WRITE_BATCH = 10_000
Progress = Callable[[str, int, int | None], None]  # stage, advance, total


def _quiet(_stage: str, _n: int, _total: int | None) -> None:
    return None


class EntityAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An entity the GNN flagged, on ``fraud-alerts`` beside the transaction alerts
    (tell them apart by the key prefix ``gnn:`` or ``kind``)."""

    kind: str = "entity"
    entity_type: str
    entity_id: str
    score: float
    reason: str = "gnn_risk"
    model_version: str
    scored_ms: int  # wall-clock time of the scoring run
    as_of_ms: int  # the event time the score is as of (the nodes' risk_scored_ms)


@dataclass
class TrainResult:
    version: str
    promoted: bool
    metric: float  # validation AP over all target entities
    champion_metric: float | None
    metrics: dict[str, Any]
    losses: list[float]
    seconds: dict[str, float] = field(default_factory=dict)
    data: dict[str, int] = field(default_factory=dict)


@dataclass
class ScoreResult:
    version: str
    scored: dict[str, int]
    flagged: dict[str, int]
    seconds: dict[str, float]
    as_of_ms: int  # the event time the scores are as of (risk_scored_ms)


def quality(split: Split, predicted: dict[str, np.ndarray]) -> dict[str, Any]:
    """Average precision and ROC AUC (scikit-learn's; None where undefined) on every
    validation entity, per target type and all together (``all``; its AP is 0.0
    without positives), and on the held-out ones alone (``held_out``: entities no
    model trained on; a gap to ``all`` is what the model remembers of its training
    negatives).  No sampling: the prevalence is the real one."""
    out: dict[str, Any] = {}
    every = _measure(split, predicted, split.valid)
    out.update({t: every[t] for t in TARGETS})
    out["all"] = {**every["all"], "ap": every["all"]["ap"] or 0.0}
    out["held_out"] = _measure(split, predicted, {t: split.valid[t] & split.held_out[t]
                                                   for t in TARGETS})["all"]
    return out


def _measure(split: Split, predicted: dict[str, np.ndarray], masks: dict[str, np.ndarray]
             ) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    labels_all: list[bool] = []
    scores_all: list[float] = []
    for t in TARGETS:
        labels = [bool(v) for v in split.y[t][masks[t]]]
        values = [float(v) for v in predicted[t][masks[t]]]
        labels_all += labels
        scores_all += values
        out[t] = _row(labels, values)
    out["all"] = _row(labels_all, scores_all)
    return out


def _row(labels: list[bool], values: list[float]) -> dict[str, Any]:
    return {"ap": average_precision(labels, values), "auc": roc_auc(labels, values),
            "positives": sum(labels), "entities": len(labels)}


def fit_models(data: GraphData, split: Split, config: ModelConfig,
               progress: Progress = _quiet) -> tuple[Any, Any, Standardiser, list[float]]:
    """Train the GNN and the baseline (same features, split, loss and epochs).  The
    baseline trains on every training entity without the label input: an entity's
    own label is the only one it could read, and that is the answer."""
    standardiser = Standardiser.fit(data, split.train)
    graph = hetero_data(data, standardiser, split.known)
    model = build_gnn(graph, config)
    losses = fit(model, graph, split, data.reported_ms, config,
                 lambda n: progress("train gnn", n, config.epochs))
    torch.manual_seed(config.seed)
    baseline = Baseline({t: graph[t].x.shape[1] for t in TARGETS})
    fit(baseline, graph, split, data.reported_ms, baseline_config(config),
        lambda n: progress("train baseline", n, config.epochs))
    return model, baseline, standardiser, losses


def predict(artifact: Artifact, model: Any, data: GraphData,
            known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores of a saved model; ``known``: the confirmed fraud it may see (label input)."""
    artifact.check_features(data)
    return predict_raw(model, data, artifact.standardiser, shown(artifact.config, known))


def baseline_config(config: ModelConfig) -> ModelConfig:
    return replace(config, label_input=False)


def shown(config: ModelConfig, known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The label input a model reads: ``known``, or nothing for one trained without."""
    return known if config.label_input else {t: np.zeros_like(k) for t, k in known.items()}


def train(settings: Settings, config: ModelConfig, cut_quantile: float = 0.7,
          promote: bool = True, progress: Progress = _quiet) -> TrainResult:
    """Export, train GNN and baseline, register, promote if better than the champion."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    store = connect.blocklist(settings)
    driver = connect.neo4j(settings)
    try:
        with registry.training_lock(store.conn):
            data = dataset.export(driver)
            seconds["export"] = time.perf_counter() - started
            split = dataset.split(data, cut_quantile)
            if not any((split.known[t] & split.train[t]).any() for t in TARGETS):
                raise ValueError("no fraud reported by the cut-off: the GNN needs labels "
                                 "(run the detector daemon with the fraud-labels topic)")
            t0 = time.perf_counter()
            model, baseline, standardiser, losses = fit_models(data, split, config, progress)
            seconds["train"] = time.perf_counter() - t0
            known = split.known
            graph = hetero_data(data, standardiser, shown(config, known))
            metrics = {"gnn": quality(split, model_scores(model, graph)),
                       "baseline": quality(split, predict_raw(
                           baseline, data, standardiser, shown(baseline_config(config), known)))}
            metric = float(metrics["gnn"]["all"]["ap"])
            version = registry.new_version()
            where = registry.folder(settings.data_dir, version)
            metadata = graph.metadata()
            artifact = Artifact("gnn", config, schema(data), standardiser,
                                (list(metadata[0]), [tuple(r) for r in metadata[1]]))
            artifact.save(model, where)
            Artifact("baseline", baseline_config(config), schema(data), standardiser,
                     artifact.metadata).save(baseline, where / "baseline")
            champion = registry.champion(store.conn)
            champion_metric = _champion_metric(champion, data, split)
            seconds["total"] = time.perf_counter() - started
            metrics["seconds"] = seconds
            registry.record(store.conn, registry.ModelRow(
                version, datetime.now(UTC), data.oldest_ms, data.newest_ms, split.cut_ms,
                data.entities, metric, metrics, asdict(config), str(where), False, None))
            # no fraud reported after the cut-off: nothing measured the model, so it is
            # not promoted
            measured = metrics["gnn"]["all"]["positives"] > 0
            promoted = promote and measured and (champion_metric is None
                                                 or metric > champion_metric)
            if promoted:
                registry.promote(store.conn, version)
    finally:
        driver.close()
        store.close()
    return TrainResult(version, promoted, metric, champion_metric, metrics, losses, seconds,
                       {"entities": data.entities, "relationships": data.relationships,
                        "cut_ms": split.cut_ms})


def predict_raw(model: Any, data: GraphData, standardiser: Standardiser,
                known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return model_scores(model, hetero_data(data, standardiser, known))


def _champion_metric(champion: registry.ModelRow | None, data: GraphData,
                     split: Split) -> float | None:
    """The champion's AP on this split's validation entities (None: no champion; a
    champion trained on other features scores -1, so any new model replaces it)."""
    if champion is None:
        return None
    try:
        artifact, model = Artifact.load(Path(champion.path))
        predicted = predict(artifact, model, data, split.known)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        log.warning("the champion %s cannot score this graph (%s): any new model replaces it",
                    champion.version, exc)
        return -1.0
    return float(quality(split, predicted)["all"]["ap"])


def evaluate(settings: Settings, version: str | None = None) -> tuple[str, dict[str, Any]]:
    """A registered model (default: the champion) and its baseline on the current graph's
    validation split."""
    row = _model_row(settings, version)
    driver = connect.neo4j(settings)
    try:
        data = dataset.export(driver)
    finally:
        driver.close()
    split = dataset.split(data)
    out = {}
    for kind, where in (("gnn", Path(row.path)), ("baseline", Path(row.path) / "baseline")):
        artifact, model = Artifact.load(where)
        out[kind] = quality(split, predict(artifact, model, data, split.known))
    return row.version, out


def _model_row(settings: Settings, version: str | None) -> registry.ModelRow:
    store = connect.blocklist(settings)
    try:
        row = registry.champion(store.conn) if version is None else registry.get(store.conn,
                                                                                   version)
    finally:
        store.close()
    if row is None:
        raise LookupError("no champion model yet: run `fraudgraph gnn train`" if version is None
                          else f"no model {version!r}: `fraudgraph gnn models` lists them")
    return row


def score(settings: Settings, version: str | None = None, flag_threshold: float = 0.95,
          ttl_seconds: int = 30 * 86_400, progress: Progress = _quiet,
          labels_until: int | str | None = None, flag: bool = True) -> ScoreResult:
    """Score every card, user and device with a model (default: the champion).

    Confirmed fraud scores 1 (it is certain) and is not flagged: the label feedback
    has acted on it (blocklisted the card; a user or device with confirmed fraud may
    be the victim); the flagged entities (``flag``, at or above
    ``flag_threshold``) are the new suspects.  ``labels_until`` (a backtest): the
    model sees only the fraud reported at or before this time (ms), or at or before
    the model's training cut-off (``"cut"``); default: all confirmed fraud.  The
    nodes' ``risk_scored_ms`` is :func:`as_of_ms`."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    row = _model_row(settings, version)
    artifact, model = Artifact.load(Path(row.path))
    driver = connect.neo4j(settings)
    store = connect.blocklist(settings)
    out = Publisher(settings.kafka.bootstrap)
    try:
        data = dataset.export(driver)
        seconds["export"] = time.perf_counter() - started
        t0 = time.perf_counter()
        until = None if labels_until is None else int(
            row.cut_ms if labels_until == "cut" else labels_until)
        known = dataset.known_fraud(data, until)
        predicted = predict(artifact, model, data, known)
        for t in TARGETS:
            predicted[t][known[t]] = 1.0
        seconds["inference"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        now_ms = int(time.time() * 1000)
        as_of = as_of_ms(data, known, until)
        total = sum(len(data.node_ids[t]) for t in TARGETS)
        for rows in _batches(data, predicted):
            driver.execute_query(cypher.load("gnn_write_scores"), rows, model=row.version,
                                 scored_ms=as_of,
                                 high_risk=flag_threshold if flag else 2.0)  # 2: none
            progress("write scores", sum(len(v) for v in rows.values()), total)
        seconds["write"] = time.perf_counter() - t0
        entries = [NewEntry(ENTITY_TYPE[t], node_id, "gnn_risk", "gnn", round(float(s), 6),
                            {"model_version": row.version, "score": round(float(s), 6),
                             SINCE: as_of},  # the stream sees it from the scores' time on
                            ttl_seconds)
                   for t in TARGETS
                   for node_id, s, confirmed in zip(data.node_ids[t], predicted[t], known[t],
                                                    strict=True)
                   if flag and s >= flag_threshold and not confirmed]
        blocklist_entities(store, driver, entries, f"gnn {row.version}")
        for e in entries:
            alert = EntityAlert(entity_type=e.entity_type, entity_id=e.entity_id, score=e.score,
                                model_version=row.version, scored_ms=now_ms, as_of_ms=as_of)
            out.send(settings.topics.alerts, f"gnn:{e.entity_type}:{e.entity_id}".encode(),
                     msgspec.json.encode(alert))
        out.flush()
        seconds["total"] = time.perf_counter() - started
    finally:
        store.close()
        driver.close()
    flagged = {ENTITY_TYPE[t]: sum(1 for e in entries if e.entity_type == ENTITY_TYPE[t])
               for t in TARGETS}
    return ScoreResult(row.version, {ENTITY_TYPE[t]: len(data.node_ids[t]) for t in TARGETS},
                       flagged, seconds, as_of)


def as_of_ms(data: GraphData, known: dict[str, np.ndarray], labels_until: int | None) -> int:
    """The event time scores computed from ``data`` with the label input ``known`` are
    as of: the newest event time of the graph, or, if later, ``labels_until`` (when
    given) or else the latest report time among the ``known`` frauds.  A transaction
    before it must not read the scores: they saw activity or labels after it."""
    labels = labels_until if labels_until is not None else dataset.label_time_ms(data, known)
    return max(data.newest_ms, labels if labels is not None else data.newest_ms)


def _batches(data: GraphData, predicted: dict[str, np.ndarray]
             ) -> Iterator[dict[str, list[dict[str, Any]]]]:
    keys = {"Card": "cards", "User": "users", "Device": "devices"}
    for t in TARGETS:
        ids, values = data.node_ids[t], predicted[t]
        for start in range(0, len(ids), WRITE_BATCH):
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in keys.values()}
            rows[keys[t]] = [{"id": i, "score": round(float(s), 6)} for i, s in
                             zip(ids[start:start + WRITE_BATCH],
                                 values[start:start + WRITE_BATCH], strict=True)]
            yield rows
