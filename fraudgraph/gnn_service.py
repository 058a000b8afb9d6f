"""The GNN's service wiring: what the ``fraudgraph gnn`` commands run.  :mod:`gnn`
takes data and returns results; this module opens the connections from the
settings, holds the training lock, writes the registry, blocklists and announces.

* :func:`train` exports the graph, trains the GNN and the baseline on the same
  split, measures both on the validation entities (see :mod:`gnn.dataset`),
  registers the model and promotes it only if it beats the champion (measured
  again on this split: :func:`gnn.registry.beats`);
* :func:`evaluate` measures a registered model and its baseline on the current graph;
* :func:`score` runs a model (default: the champion) over the whole graph, writes
  ``risk_score`` / ``risk_model`` / ``risk_scored_ms`` onto card, user and device
  nodes in batches, blocklists the entities at or above the flag threshold (source
  ``gnn``, through :class:`fraudgraph.blocking.Blocker`) and announces them on
  ``fraud-alerts`` (key ``gnn:<type>:<id>``).

Imports torch (through :mod:`gnn`): the CLI imports this module inside the
commands that need it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from detectors.blocklist import NewEntry
from detectors.entities import ENTITY_TYPE
from fraudgraph import connect
from fraudgraph.blocking import Blocker
from fraudgraph.settings import Settings
from gnn import dataset, evaluation, registry, scoring, training
from gnn.dataset import TARGETS
from gnn.model import Artifact, ModelConfig
from gnn.training import Progress
from ingest.publish import Publisher
from storage import models as model_store
from storage.models import ModelRow, TrainingLocked

__all__ = ["EntityAlert", "ScoreResult", "TrainResult", "TrainingLocked", "evaluate", "score",
           "train"]


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
    scored: dict[str, int]  # per entity type (card, user, device)
    flagged: dict[str, int]
    seconds: dict[str, float]
    as_of_ms: int  # the event time the scores are as of (risk_scored_ms)


def train(settings: Settings, config: ModelConfig, cut_quantile: float = 0.7,
          promote: bool = True, progress: Progress = _quiet) -> TrainResult:
    """Export, train GNN and baseline, register, promote if better than the champion.

    Holds the training lock for the whole run (raises :class:`TrainingLocked` when
    another run holds it); raises ValueError when no fraud was reported by the cut-off.
    The artifacts are saved before the row is registered, the row before promotion."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    store = connect.blocklist(settings)
    driver = connect.neo4j(settings)
    try:
        with model_store.training_lock(store.conn):
            data = dataset.export(driver)
            seconds["export"] = time.perf_counter() - started
            split = dataset.split(data, cut_quantile)
            training.require_labels(split)
            t0 = time.perf_counter()
            fitted = training.fit_models(data, split, config, progress)
            seconds["train"] = time.perf_counter() - t0
            trained = training.measure(data, split, config, fitted)
            version = registry.new_version()
            where = registry.folder(settings.data_dir, version)
            trained.save(where)
            champion = model_store.champion(store.conn)
            champion_metric = evaluation.champion_metric(champion, data, split)
            seconds["total"] = time.perf_counter() - started
            trained.metrics["seconds"] = seconds
            model_store.record(store.conn, ModelRow(
                version, datetime.now(UTC), data.oldest_ms, data.newest_ms, split.cut_ms,
                data.entities, trained.metric, trained.metrics, asdict(config), str(where),
                False, None))
            promoted = promote and registry.beats(trained.metric, trained.measured,
                                                  champion_metric)
            if promoted:
                model_store.promote(store.conn, version)
    finally:
        driver.close()
        store.close()
    return TrainResult(version, promoted, trained.metric, champion_metric, trained.metrics,
                       fitted.losses, seconds,
                       {"entities": data.entities, "relationships": data.relationships,
                        "cut_ms": split.cut_ms})


def evaluate(settings: Settings, version: str | None = None) -> tuple[str, dict[str, Any]]:
    """A registered model (default: the champion) and its baseline on the current graph's
    validation split: (version, ``{"gnn": quality, "baseline": quality}``).  Raises
    LookupError for a model not registered, ValueError for one the graph cannot feed."""
    row = _model_row(settings, version)
    driver = connect.neo4j(settings)
    try:
        data = dataset.export(driver)
    finally:
        driver.close()
    return row.version, evaluation.evaluate_saved(Path(row.path), data)


def _model_row(settings: Settings, version: str | None) -> ModelRow:
    """The registry row of ``version`` (None: the champion); LookupError when absent."""
    store = connect.blocklist(settings)
    try:
        row = (model_store.champion(store.conn) if version is None
               else model_store.get(store.conn, version))
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
    nodes' ``risk_scored_ms`` is :func:`gnn.scoring.as_of_ms`.

    Order: scores onto the nodes, then the blocklist (PostgreSQL, then the nodes'
    ``blocked`` marks), then the alerts, flushed; every step is idempotent, so a
    run repeated after a failure repeats nothing harmful."""
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
        scored = scoring.score(artifact, model, data, until)
        seconds["inference"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        now_ms = int(time.time() * 1000)
        total = sum(len(data.node_ids[t]) for t in TARGETS)
        scoring.write_scores(driver, data, scored, row.version,
                             flag_threshold if flag else 2.0,  # 2: none is high risk
                             lambda n: progress("write scores", n, total))
        seconds["write"] = time.perf_counter() - t0
        entries = (scoring.suspects(data, scored, row.version, flag_threshold, ttl_seconds)
                   if flag else [])
        Blocker(store, driver).block(entries, f"gnn {row.version}")
        _announce(out, settings.topics.alerts, entries, row.version, now_ms, scored.as_of_ms)
        seconds["total"] = time.perf_counter() - started
    finally:
        store.close()
        driver.close()
    flagged = {ENTITY_TYPE[t]: sum(1 for e in entries if e.entity_type == ENTITY_TYPE[t])
               for t in TARGETS}
    return ScoreResult(row.version, {ENTITY_TYPE[t]: len(data.node_ids[t]) for t in TARGETS},
                       flagged, seconds, scored.as_of_ms)


def _announce(out: Publisher, topic: str, entries: list[NewEntry], version: str,
              now_ms: int, as_of_ms: int) -> None:
    """One :class:`EntityAlert` per flagged entity (key ``gnn:<type>:<id>``), flushed."""
    for e in entries:
        alert = EntityAlert(entity_type=e.entity_type, entity_id=e.entity_id, score=e.score,
                            model_version=version, scored_ms=now_ms, as_of_ms=as_of_ms)
        out.send(topic, f"gnn:{e.entity_type}:{e.entity_id}".encode(),
                 msgspec.json.encode(alert))
    out.flush()
