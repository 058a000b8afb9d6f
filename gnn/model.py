"""The model: GraphSAGE made heterogeneous with ``to_hetero`` (one set of weights per
relation, messages in both directions), a logit per node; and the non-graph
baseline, a logistic regression per entity type on the same standardised features.

Label input: cards, users and devices carry one more input, ``known_fraud`` (1
for confirmed fraud known at the time, i.e. reported by then), so that two rounds
of message passing bring known fraud to the entities that share a device, a site,
an IP or a holder with it: guilt by association, which no per-entity model can
see.  Training mirrors how the model is used: each epoch draws an inner cut-off
among the report times of the frauds known at the split's cut-off, shows the
frauds reported up to it and takes the loss on the training entities not shown
(the frauds reported after it, up to the cut-off, and the never-labelled ones).
Drawing by time, not per entity, matters: one fraud label marks a card, its user
and its device at once, so showing some of them while hiding the others would
hand the hidden ones their own label through their neighbours.  Measuring shows the
frauds reported up to the split's cut-off and scores every other entity;
scoring shows every confirmed fraud (or those reported by ``--labels-until``).

Training is full-batch on CPU, seeded and deterministic; class imbalance is met
with a positive-class weight per entity type (negatives / positives in training).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import SAGEConv, to_hetero

from gnn.dataset import TARGETS, GraphData, Split


@dataclass(frozen=True)
class ModelConfig:
    hidden: int = 32
    layers: int = 2
    epochs: int = 150
    lr: float = 0.01
    weight_decay: float = 1e-4
    seed: int = 42
    threads: int = 2
    #: class imbalance: the positive class's loss weight is (negatives / positives) ** this
    #: (1: balanced, scores far above the fraud rate; 0.5: a milder push that keeps
    #: high scores meaningful for a blocklist threshold; 0: plain cross-entropy)
    imbalance_power: float = 0.5
    #: the label input (off: the column stays 0, for comparing with and without it)
    label_input: bool = True


LABEL_INPUT = "known_fraud"  # the last input column of every target type


class _Sage(nn.Module):
    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(SAGEConv((-1, -1), hidden) for _ in range(layers))
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        return self.head(x).squeeze(-1)


class Baseline(nn.Module):
    """Logistic regression per target type on the node's own features."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.linear = nn.ModuleDict({t: nn.Linear(dims[t], 1) for t in TARGETS})

    def forward(self, x: dict[str, torch.Tensor], _edges: Any = None) -> dict[str, torch.Tensor]:
        return {t: self.linear[t](x[t]).squeeze(-1) for t in TARGETS}


@dataclass
class Standardiser:
    """Feature means and deviations per node type (from the entities the model was
    trained on), applied unchanged at validation and scoring time."""

    mean: dict[str, list[float]]
    std: dict[str, list[float]]

    @classmethod
    def fit(cls, data: GraphData, rows: dict[str, np.ndarray] | None = None) -> Standardiser:
        """``rows[t]``: bool per node, the training entities of type ``t``; a type
        without a mask (sites and IPs: never labelled, never validated) uses all its
        nodes.  The other entities' features never reach the statistics."""
        mean, std = {}, {}
        for t, x in data.x.items():
            fit_on = x[rows[t]] if rows is not None and t in rows else x
            if not len(fit_on):
                mean[t], std[t] = [0.0] * x.shape[1], [1.0] * x.shape[1]
                continue
            deviation = fit_on.std(axis=0)
            mean[t] = fit_on.mean(axis=0).tolist()
            # a feature constant in training keeps scale 1: dividing by ~0 would blow up
            # any later variation of it at scoring time
            std[t] = np.where(deviation < 1e-3, 1.0, deviation).tolist()
        return cls(mean, std)

    def apply(self, data: GraphData) -> dict[str, torch.Tensor]:
        return {t: torch.from_numpy((x - np.array(self.mean[t], dtype=np.float32))
                                    / np.array(self.std[t], dtype=np.float32))
                for t, x in data.x.items()}


def schema(data: GraphData) -> dict[str, list[str]]:
    """The model's input columns per node type: the features, then the label input."""
    return {t: [*names, LABEL_INPUT] if t in TARGETS else names
            for t, names in data.feature_names.items()}


def hetero_data(data: GraphData, standardiser: Standardiser,
                known: dict[str, np.ndarray]) -> HeteroData:
    """PyG ``HeteroData``: standardised features plus the label input ``known`` (per
    target type, bool per node) as the last column, and a reverse relation for each
    relation."""
    graph = HeteroData()
    for t, x in standardiser.apply(data).items():
        if t in TARGETS:
            x = torch.cat([x, torch.from_numpy(known[t].astype(np.float32))[:, None]], dim=1)
        graph[t].x = x
    for (src, rel, dst), index in data.edges.items():
        edge_index = torch.from_numpy(index)
        graph[src, rel, dst].edge_index = edge_index
        graph[dst, f"rev_{rel}", src].edge_index = edge_index.flip(0)
    return graph


def build_gnn(graph: HeteroData, config: ModelConfig) -> nn.Module:
    torch.manual_seed(config.seed)
    model = to_hetero(_Sage(config.hidden, config.layers), graph.metadata(), aggr="sum")
    with torch.no_grad():  # initialise the lazy input sizes, seeded
        model(graph.x_dict, graph.edge_index_dict)
    return model


def forward(model: nn.Module, graph: HeteroData,
            x_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = model(graph.x_dict if x_dict is None else x_dict,
                                         graph.edge_index_dict)
    return out


def label_view(times: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], inner: int
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One training epoch's view: ``shown`` (label input 1), the frauds reported at or
    before ``inner``; ``hidden`` (the loss), the training entities (``masks``) not
    shown.  ``times``: report time of the frauds known at the cut-off, -1 elsewhere."""
    shown = {t: (times[t] >= 0) & (times[t] <= inner) for t in times}
    return shown, {t: masks[t] & ~shown[t] for t in times}


def train(model: nn.Module, graph: HeteroData, split: Split,
          reported_ms: dict[str, np.ndarray], config: ModelConfig,
          progress: Callable[[int], None] = lambda _n: None) -> list[float]:
    """Full-batch training on the split's training entities with the labels known at
    its cut-off (``split.known``: reported by then); returns the loss per epoch.
    ``split.y`` (the labels reported later too) is never read.

    ``reported_ms``: report time of each entity's fraud (-1: none).  Each epoch draws
    an inner cut-off uniformly among the known frauds' report times, shows the frauds
    reported up to it in the label input and takes the loss on the other training
    entities."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    draw = torch.Generator().manual_seed(config.seed)
    masks = {t: torch.from_numpy(split.train[t]) for t in TARGETS}
    labels = {t: torch.from_numpy(split.known[t].astype(np.float32)) for t in TARGETS}
    times = {t: torch.from_numpy(np.where(split.known[t], reported_ms[t], -1))
             for t in TARGETS}
    # one entry per report time: a label marks a card, its user and its device at once
    known_times = torch.unique(torch.cat([v[v >= 0] for v in times.values()]))
    weights = {}
    for t in TARGETS:
        y = labels[t][masks[t]]
        positives = float(y.sum())
        ratio = (len(y) - positives) / positives if positives else 1.0
        weights[t] = torch.tensor(ratio ** config.imbalance_power)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    losses = []
    model.train()
    for _ in range(config.epochs):
        optimiser.zero_grad()
        # the inner cut-off: nothing shown, up to all but the last known fraud shown
        rank = int(torch.randint(max(1, len(known_times)), (1,), generator=draw))
        inner = int(known_times[rank - 1]) if rank and config.label_input else -1
        shown, hidden = label_view(times, masks, inner)
        x_dict = dict(graph.x_dict)
        for t in TARGETS:
            x_dict[t] = x_dict[t].clone()
            x_dict[t][:, -1] = shown[t].float()
        out = forward(model, graph, x_dict)
        loss = sum((nn.functional.binary_cross_entropy_with_logits(
            out[t][hidden[t]], labels[t][hidden[t]], pos_weight=weights[t])
            for t in TARGETS if bool(hidden[t].any())), torch.tensor(0.0))
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        progress(1)
    model.eval()
    return losses


def scores(model: nn.Module, graph: HeteroData) -> dict[str, np.ndarray]:
    """Fraud probability per target node."""
    with torch.no_grad():
        out = forward(model, graph)
    return {t: torch.sigmoid(out[t]).numpy() for t in TARGETS}


@dataclass
class Artifact:
    """A saved model: weights, config, feature schema and standardiser."""

    kind: str  # "gnn" or "baseline"
    config: ModelConfig
    feature_names: dict[str, list[str]]
    standardiser: Standardiser
    metadata: tuple[list[str], list[tuple[str, str, str]]]

    def save(self, model: nn.Module, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), folder / "model.pt")
        meta = {"kind": self.kind, "config": asdict(self.config),
                "feature_names": self.feature_names,
                "standardiser": asdict(self.standardiser),
                "metadata": [self.metadata[0], [list(r) for r in self.metadata[1]]],
                "saved_at": time.time()}
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path) -> tuple[Artifact, nn.Module]:
        meta = json.loads((folder / "meta.json").read_text())
        config = ModelConfig(**meta["config"])
        node_types, relations = meta["metadata"]
        artifact = cls(meta["kind"], config, meta["feature_names"],
                       Standardiser(**meta["standardiser"]),
                       (node_types, [tuple(r) for r in relations]))
        state = torch.load(folder / "model.pt", weights_only=True)
        model: nn.Module
        if artifact.kind == "baseline":
            model = Baseline({t: len(artifact.feature_names[t]) for t in TARGETS})
        else:
            model = to_hetero(_Sage(config.hidden, config.layers),
                              (node_types, [tuple(r) for r in relations]), aggr="sum")
            dims = {t: len(artifact.feature_names[t]) for t in node_types}
            with torch.no_grad():  # materialise the lazy sizes before loading
                model({t: torch.zeros(1, dims[t]) for t in node_types},
                      {tuple(r): torch.zeros(2, 0, dtype=torch.long) for r in relations})
        model.load_state_dict(state)
        model.eval()
        return artifact, model

    def check_features(self, data: GraphData) -> None:
        """The graph must give the inputs this model was trained on."""
        given = schema(data)
        for t in self.feature_names:
            if given.get(t) != self.feature_names[t]:
                raise ValueError(f"{t} features differ from the model's: retrain it")
