"""Training: the GNN and the baseline fitted on one split, measured on its validation
entities, and packaged as the artifacts a registry version saves.

:func:`fit_models` trains both on the same features, split, loss and epochs;
:func:`measure` scores the validation entities (every entity not known as fraud at
the cut-off, at the real prevalence: see :mod:`gnn.dataset`) with the frauds
reported by the cut-off as the label input, as production uses the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from gnn.dataset import TARGETS, GraphData, Split
from gnn.evaluation import quality
from gnn.model import Artifact, Baseline, ModelConfig, Standardiser, build_gnn, hetero_data, schema
from gnn.model import scores as model_scores
from gnn.model import train as fit
from gnn.scoring import predict_raw, shown

Progress = Callable[[str, int, int | None], None]  # stage, advance, total


def _quiet(_stage: str, _n: int, _total: int | None) -> None:
    return None


class Fitted(NamedTuple):
    """A trained GNN and baseline, the standardiser both read, the GNN's loss per epoch."""

    model: Any
    baseline: Any
    standardiser: Standardiser
    losses: list[float]


@dataclass
class Trained:
    """A fitted pair measured on its split: ``metrics`` is ``{"gnn": quality,
    "baseline": quality}`` (:func:`gnn.evaluation.quality`); ``artifact``: the GNN's
    (config, feature schema, standardiser, graph metadata)."""

    fitted: Fitted
    metrics: dict[str, Any]
    artifact: Artifact

    @property
    def metric(self) -> float:
        """Validation AP over all target entities: what promotion compares."""
        return float(self.metrics["gnn"]["all"]["ap"])

    @property
    def measured(self) -> bool:
        """Whether fraud was reported after the cut-off (else nothing measured the model)."""
        return bool(self.metrics["gnn"]["all"]["positives"] > 0)

    def save(self, folder: Path) -> None:
        """The GNN in ``folder``, the baseline in ``folder/baseline``."""
        self.artifact.save(self.fitted.model, folder)
        Artifact("baseline", baseline_config(self.artifact.config), self.artifact.feature_names,
                 self.fitted.standardiser, self.artifact.metadata
                 ).save(self.fitted.baseline, folder / "baseline")


def baseline_config(config: ModelConfig) -> ModelConfig:
    """The baseline's config: the GNN's without the label input."""
    return replace(config, label_input=False)


def require_labels(split: Split) -> None:
    """Raise ValueError unless some fraud reported by the cut-off trains the model."""
    if not any((split.known[t] & split.train[t]).any() for t in TARGETS):
        raise ValueError("no fraud reported by the cut-off: the GNN needs labels "
                         "(run the detector daemon with the fraud-labels topic)")


def fit_models(data: GraphData, split: Split, config: ModelConfig,
               progress: Progress = _quiet) -> Fitted:
    """Train the GNN and the baseline (same features, split, loss and epochs).  The
    baseline trains on every training entity without the label input: an entity's
    own label is the only one it could read, and that is the answer.  Seeded:
    the same inputs give the same models."""
    standardiser = Standardiser.fit(data, split.train)
    graph = hetero_data(data, standardiser, split.known)
    model = build_gnn(graph, config)
    losses = fit(model, graph, split, data.reported_ms, config,
                 lambda n: progress("train gnn", n, config.epochs))
    torch.manual_seed(config.seed)
    baseline = Baseline({t: graph[t].x.shape[1] for t in TARGETS})
    fit(baseline, graph, split, data.reported_ms, baseline_config(config),
        lambda n: progress("train baseline", n, config.epochs))
    return Fitted(model, baseline, standardiser, losses)


def measure(data: GraphData, split: Split, config: ModelConfig, fitted: Fitted) -> Trained:
    """Both models' quality on the split's validation entities, shown the frauds
    reported by the cut-off (``split.known``), and the GNN's artifact."""
    known: dict[str, np.ndarray] = split.known
    graph = hetero_data(data, fitted.standardiser, shown(config, known))
    metrics = {"gnn": quality(split, model_scores(fitted.model, graph)),
               "baseline": quality(split, predict_raw(
                   fitted.baseline, data, fitted.standardiser,
                   shown(baseline_config(config), known)))}
    node_types, relations = graph.metadata()
    artifact = Artifact("gnn", config, schema(data), fitted.standardiser,
                        (list(node_types), [tuple(r) for r in relations]))
    return Trained(fitted, metrics, artifact)
