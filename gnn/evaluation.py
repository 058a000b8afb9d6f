"""Model quality on a split's validation entities (see :mod:`gnn.dataset`): the
figures ``fraudgraph gnn train`` prints and registers, ``gnn evaluate`` measures
again on the current graph, and the champion is measured by before a promotion."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from detectors.quality import average_precision, roc_auc
from gnn import dataset
from gnn.dataset import TARGETS, GraphData, Split
from gnn.model import Artifact
from gnn.scoring import predict
from storage.models import ModelRow

log = logging.getLogger(__name__)


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


def evaluate_saved(folder: Path, data: GraphData) -> dict[str, Any]:
    """A saved model (``folder``) and its baseline (``folder/baseline``) measured on
    ``data``'s default validation split: ``{"gnn": quality, "baseline": quality}``.
    Raises ValueError when the graph's features are not the model's."""
    split = dataset.split(data)
    out = {}
    for kind, where in (("gnn", folder), ("baseline", folder / "baseline")):
        artifact, model = Artifact.load(where)
        out[kind] = quality(split, predict(artifact, model, data, split.known))
    return out


def champion_metric(champion: ModelRow | None, data: GraphData, split: Split) -> float | None:
    """The champion's AP on this split's validation entities (None: no champion; a
    champion that cannot score this graph, e.g. trained on other features, scores -1,
    so any new model replaces it)."""
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
