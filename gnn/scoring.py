"""Scoring: a saved model's fraud probabilities for every card, user and device, the
time they are as of, the new suspects among them, and the score write onto the
graph's nodes (through a driver passed in).

``risk_scored_ms`` is the event time the scores are *as of* (:func:`as_of_ms`):
the newest event time of the exported graph, or the newest label the model was
shown if later (the ``--labels-until`` time when given), so a transaction earlier
than it never reads a score computed from its future.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import cypher
from detectors.blocklist import NewEntry
from detectors.entities import ENTITY_TYPE
from detectors.pipeline import SINCE
from gnn import dataset
from gnn.dataset import TARGETS, GraphData
from gnn.model import Artifact, ModelConfig, Standardiser, hetero_data
from gnn.model import scores as model_scores

WRITE_BATCH = 10_000  # nodes per gnn_write_scores call


@dataclass(frozen=True)
class Scored:
    """``predicted[t]``: float per node of type ``t`` (``GraphData.node_ids`` order),
    1.0 for the confirmed fraud shown (``known[t]``, bool per node); ``as_of_ms``: the
    event time the scores are as of (:func:`as_of_ms`)."""

    predicted: dict[str, np.ndarray]
    known: dict[str, np.ndarray]
    as_of_ms: int


def shown(config: ModelConfig, known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The label input a model reads: ``known``, or nothing for one trained without."""
    return known if config.label_input else {t: np.zeros_like(k) for t, k in known.items()}


def predict_raw(model: Any, data: GraphData, standardiser: Standardiser,
                known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fraud probability per target node of ``model`` with the label input ``known``
    given as is (no check of the features, no ``label_input`` switch)."""
    return model_scores(model, hetero_data(data, standardiser, known))


def predict(artifact: Artifact, model: Any, data: GraphData,
            known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores of a saved model; ``known``: the confirmed fraud it may see (label input).
    Raises ValueError when the graph's features are not the model's."""
    artifact.check_features(data)
    return predict_raw(model, data, artifact.standardiser, shown(artifact.config, known))


def as_of_ms(data: GraphData, known: dict[str, np.ndarray], labels_until: int | None) -> int:
    """The event time scores computed from ``data`` with the label input ``known`` are
    as of: the newest event time of the graph, or, if later, ``labels_until`` (when
    given) or else the latest report time among the ``known`` frauds.  A transaction
    before it must not read the scores: they saw activity or labels after it."""
    labels = labels_until if labels_until is not None else dataset.label_time_ms(data, known)
    return max(data.newest_ms, labels if labels is not None else data.newest_ms)


def score(artifact: Artifact, model: Any, data: GraphData, labels_until: int | None) -> Scored:
    """Score every target node.  The model is shown the fraud reported at or before
    ``labels_until`` (ms; None: all confirmed fraud); that fraud scores 1 (it is
    certain)."""
    known = dataset.known_fraud(data, labels_until)
    predicted = predict(artifact, model, data, known)
    for t in TARGETS:
        predicted[t][known[t]] = 1.0
    return Scored(predicted, known, as_of_ms(data, known, labels_until))


def suspects(data: GraphData, scored: Scored, version: str, threshold: float,
             ttl_seconds: int) -> list[NewEntry]:
    """Blocklist entries (source ``gnn``, reason ``gnn_risk``) for the entities scoring
    at least ``threshold`` that are not confirmed fraud: the label feedback has acted
    on those (blocklisted the card; a user or device with confirmed fraud may be the
    victim).  The stream sees an entry from the scores' time on (``since_ms``)."""
    return [NewEntry(ENTITY_TYPE[t], node_id, "gnn_risk", "gnn", round(float(s), 6),
                     {"model_version": version, "score": round(float(s), 6),
                      SINCE: scored.as_of_ms},
                     ttl_seconds)
            for t in TARGETS
            for node_id, s, confirmed in zip(data.node_ids[t], scored.predicted[t],
                                             scored.known[t], strict=True)
            if s >= threshold and not confirmed]


def write_scores(driver: Any, data: GraphData, scored: Scored, version: str,
                 high_risk: float, progress: Callable[[int], None] = lambda _n: None) -> None:
    """Write ``risk_score`` / ``risk_model`` / ``risk_scored_ms`` onto the card, user and
    device nodes, :data:`WRITE_BATCH` nodes a call, and label ``HighRisk`` those at or
    above ``high_risk`` (above 1: none).  Idempotent; ``progress(n)`` after each batch of
    ``n`` nodes."""
    for rows in _batches(data, scored.predicted):
        driver.execute_query(cypher.load("gnn_write_scores"), rows, model=version,
                             scored_ms=scored.as_of_ms, high_risk=high_risk)
        progress(sum(len(v) for v in rows.values()))


def _batches(data: GraphData, predicted: dict[str, np.ndarray]
             ) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """gnn_write_scores's list parameters (``cards``, ``users``, ``devices``), one type
    filled per batch."""
    keys = {t: f"{ENTITY_TYPE[t]}s" for t in TARGETS}
    for t in TARGETS:
        ids, values = data.node_ids[t], predicted[t]
        for start in range(0, len(ids), WRITE_BATCH):
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in keys.values()}
            rows[keys[t]] = [{"id": i, "score": round(float(s), 6)} for i, s in
                             zip(ids[start:start + WRITE_BATCH],
                                 values[start:start + WRITE_BATCH], strict=True)]
            yield rows
