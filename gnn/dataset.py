"""The GNN's dataset: the aggregate graph exported from Neo4j as arrays (numpy only;
:mod:`gnn.model` turns it into a PyG ``HeteroData``).

Node features come from graph *activity* only (the aggregate relationships'
counts, amounts and first/last seen times), never from labels, blocklist marks
or earlier model scores, so no label reaches the model through its inputs.
Labels are the confirmed-fraud marks of cards, users and devices, with two
times: ``fraud_ms``, the event time of the latest confirmed fraud, and
``reported_ms``, the earliest time a fraud label marking the entity was
*reported* (labels arrive days after the fraud).  An entity's fraud is known
from its report time on, never from its event time.

The one label-derived input is separate from the features: :func:`known_fraud`,
the fraud *reported* by a time (the cut-off when training and measuring, now or
``--labels-until`` when scoring), which the model reads as an extra input so
that message passing carries known fraud to the entities around it (see
:mod:`gnn.model`).

Split (:func:`split`), by report time, as production lives it: a model trained
at time T knows the labels reported by T and is then used on every entity not
known as fraud at T; its hits are the entities whose fraud is reported later
(whenever the fraud itself happened).  With the cut-off T at a quantile of the
report times:

* validation entities (``Split.valid``): *every* entity not known as fraud at T;
  the positives (``Split.y``) are the frauds reported after T.  No sampling: the
  validation prevalence is the real one, so its average precision is the one a
  model meets when it scores the graph at T;
* training entities (``Split.train``): the frauds reported by T (``Split.known``,
  the positives) and the never-labelled entities outside a held-out share
  (``Split.held_out``, chosen by a hash of the id: deterministic).  The frauds
  reported after T never train (they are the validation positives), so the
  trained-on never-labelled entities are validation negatives too, as in
  production, where the model scores the entities it trained on;
* ``held_out``: the held-out never-labelled entities and the held-out later
  frauds are the validation entities no model trained on, at the real
  prevalence too (the hash ignores labels): their AP beside the AP of all
  shows how much the model remembers of its training negatives.

The feature standardiser is fit on the training entities only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import cypher
from detectors.entities import NODE_LABEL, SCORED

# the node labels in this order: the order of the exported arrays, hence of a saved
# model's node types (HeteroData metadata) and of its seeded initialisation
NODE_TYPES = tuple(NODE_LABEL[e] for e in ("user", "card", "site", "device", "ip"))
TARGETS = tuple(NODE_LABEL[e] for e in SCORED)  # the entities scored: Card, User, Device
RELATIONS = (("User", "HOLDS", "Card"), ("Card", "PAID_AT", "Site"),
             ("Card", "USED_ON", "Device"), ("User", "USES", "Device"),
             ("User", "FROM_IP", "IP"))
DAY_MS = 86_400_000
EDGE_FEATURES = ("degree", "transactions", "amount", "amount_per_tx", "max_edge_tx",
                 "span_days")


@dataclass
class GraphData:
    """``x[t]`` float32 [n_t, f_t] (rows in ``node_ids[t]`` order); ``edges[rel]`` int64
    [2, e]; ``fraud_ms[t]`` / ``reported_ms[t]`` int64 [n_t] (targets only): event time
    of the latest confirmed fraud and earliest report time of a fraud label, -1
    without confirmed fraud.  ``newest_ms`` / ``oldest_ms``: the newest and oldest
    event time of the activity the features come from."""

    node_ids: dict[str, list[str]]
    x: dict[str, np.ndarray]
    feature_names: dict[str, list[str]]
    edges: dict[tuple[str, str, str], np.ndarray]
    fraud_ms: dict[str, np.ndarray]
    reported_ms: dict[str, np.ndarray]
    newest_ms: int
    oldest_ms: int

    @property
    def entities(self) -> int:
        return sum(len(ids) for ids in self.node_ids.values())

    @property
    def relationships(self) -> int:
        return sum(e.shape[1] for e in self.edges.values())


@dataclass
class Split:
    """Per target type, bool masks and labels of the split at ``cut_ms`` (a report time,
    ms; see the module docstring).  ``train`` and ``valid`` overlap by design, in the
    trained-on never-labelled entities; training reads ``known``, never ``y``."""

    cut_ms: int
    train: dict[str, np.ndarray] = field(default_factory=dict)  # in the training loss
    valid: dict[str, np.ndarray] = field(default_factory=dict)  # not known at the cut
    y: dict[str, np.ndarray] = field(default_factory=dict)  # float32 0/1: confirmed fraud
    known: dict[str, np.ndarray] = field(default_factory=dict)  # reported by the cut
    held_out: dict[str, np.ndarray] = field(default_factory=dict)  # hash share


def export(driver: Any, database: str = "neo4j") -> GraphData:
    """Read the graph with three streaming queries (nodes, relationships, labels); nodes
    written between the queries (the projection runs on) join through their edges."""
    ids: dict[str, set[str]] = {t: set() for t in NODE_TYPES}
    raw: dict[tuple[str, str, str], tuple[list[str], list[str], list[list[int]]]] = {
        rel: ([], [], [[], [], [], []]) for rel in RELATIONS}
    fraud_rows: list[tuple[str, str, int, int]] = []
    with driver.session(database=database) as session:
        for r in session.run(cypher.load("gnn_nodes")):
            ids[r["label"]].add(r["id"])
        for r in session.run(cypher.load("export_relationships")):
            rel = (r["a_label"], r["type"], r["b_label"])
            if rel not in raw:
                continue
            src, dst, values = raw[rel]
            src.append(r["a"])
            dst.append(r["b"])
            for column, name in zip(values, ("count", "amount_minor_sum", "first_seen_ms",
                                             "last_seen_ms"), strict=True):
                column.append(r[name] or 0)
        fraud_rows = [(r["label"], r["id"], int(r["fraud_ms"]), int(r["reported_ms"]))
                      for r in session.run(cypher.load("gnn_labels"))]
    for (a_label, _, b_label), (src, dst, _) in raw.items():
        ids[a_label].update(src)
        ids[b_label].update(dst)
    node_ids = {t: sorted(v) for t, v in ids.items()}
    index = {t: {node: i for i, node in enumerate(v)} for t, v in node_ids.items()}
    aggregates = {}
    for rel, (src, dst, values) in raw.items():
        aggregates[rel] = np.array(
            [[index[rel[0]][a] for a in src], [index[rel[2]][b] for b in dst], *values],
            dtype=np.float64).reshape(6, -1)
    fraud = {t: np.full(len(node_ids[t]), -1, dtype=np.int64) for t in TARGETS}
    reported = {t: np.full(len(node_ids[t]), -1, dtype=np.int64) for t in TARGETS}
    for label, node_id, fraud_ms, reported_ms in fraud_rows:
        i = index.get(label, {}).get(node_id)
        if i is not None and label in fraud:
            fraud[label][i], reported[label][i] = fraud_ms, reported_ms
    return build(node_ids, aggregates, fraud, reported)


def build(node_ids: dict[str, list[str]], aggregates: dict[tuple[str, str, str], np.ndarray],
          fraud_ms: dict[str, np.ndarray], reported_ms: dict[str, np.ndarray] | None = None
          ) -> GraphData:
    """``aggregates[rel]``: rows src index, dst index, count, amount_minor_sum,
    first_seen_ms, last_seen_ms (one column per relationship).  ``reported_ms``
    (default: ``fraud_ms``, a label reported as it happened) must be -1 exactly where
    ``fraud_ms`` is."""
    seen = [a for a in aggregates.values() if a.shape[1]]
    newest = int(max((a[5].max() for a in seen), default=0))
    oldest = int(min((a[4].min() for a in seen), default=0))
    x_parts: dict[str, list[np.ndarray]] = {t: [] for t in node_ids}
    names: dict[str, list[str]] = {t: [] for t in node_ids}
    first = {t: np.full(len(v), np.inf) for t, v in node_ids.items()}
    last = {t: np.full(len(v), -np.inf) for t, v in node_ids.items()}
    edges = {}
    for rel, agg in aggregates.items():
        edges[rel] = agg[:2].astype(np.int64)
        for side, node_type in ((0, rel[0]), (1, rel[2])):
            n = len(node_ids[node_type])
            at = agg[side].astype(np.int64)
            degree = np.bincount(at, minlength=n).astype(np.float64)
            count = np.bincount(at, weights=agg[2], minlength=n)
            amount = np.bincount(at, weights=agg[3], minlength=n)
            biggest = np.zeros(n)
            np.maximum.at(biggest, at, agg[2])
            lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
            np.minimum.at(lo, at, agg[4])
            np.maximum.at(hi, at, agg[5])
            np.minimum(first[node_type], lo, out=first[node_type])
            np.maximum(last[node_type], hi, out=last[node_type])
            span = np.where(degree > 0, (hi - lo) / DAY_MS, 0.0)
            per_tx = np.divide(amount, count, out=np.zeros(n), where=count > 0)
            x_parts[node_type] += [np.log1p(degree), np.log1p(count), np.log1p(amount),
                                   np.log1p(per_tx), np.log1p(biggest), span]
            direction = "out" if side == 0 else "in"
            names[node_type] += [f"{rel[1]}_{direction}_{f}" for f in EDGE_FEATURES]
    x = {}
    for node_type, parts in x_parts.items():
        active = np.isfinite(first[node_type])
        age = np.where(active, (newest - first[node_type]) / DAY_MS, 0.0)
        recency = np.where(active, (newest - last[node_type]) / DAY_MS, 0.0)
        parts += [age, recency]
        names[node_type] += ["age_days", "days_since_active"]
        x[node_type] = np.stack(parts, axis=1).astype(np.float32) if parts else np.zeros(
            (len(node_ids[node_type]), 0), dtype=np.float32)
    fraud = {t: fraud_ms.get(t, np.full(len(node_ids[t]), -1, dtype=np.int64))
             for t in TARGETS}
    reported = fraud if reported_ms is None else {
        t: reported_ms.get(t, np.full(len(node_ids[t]), -1, dtype=np.int64)) for t in TARGETS}
    return GraphData(node_ids, x, names, edges, fraud, reported, newest, oldest)


def _held_out(ids: list[str], share: float) -> np.ndarray:
    """Deterministic: an id's hash holds it out of training or not."""
    limit = int(share * 2**32)
    return np.array([int.from_bytes(hashlib.blake2b(i.encode(), digest_size=4).digest(), "big")
                     < limit for i in ids], dtype=bool)


def split(data: GraphData, cut_quantile: float = 0.7, held_out_share: float = 0.3) -> Split:
    """The split at a cut-off where ``cut_quantile`` of the fraud labels' report times
    fall at or before it (without labels: the newest event time).  See the module
    docstring."""
    times = np.concatenate([r[r >= 0] for r in data.reported_ms.values()])
    cut = int(np.quantile(times, cut_quantile)) if len(times) else data.newest_ms
    result = Split(cut, known=known_fraud(data, cut))
    for t in TARGETS:
        labelled = data.reported_ms[t] >= 0
        result.y[t] = labelled.astype(np.float32)
        result.held_out[t] = _held_out(data.node_ids[t], held_out_share)
        result.train[t] = result.known[t] | (~labelled & ~result.held_out[t])
        result.valid[t] = ~result.known[t]
    return result


def known_fraud(data: GraphData, until_ms: int | None = None) -> dict[str, np.ndarray]:
    """Per target type, which entities' fraud was reported at or before ``until_ms``
    (all confirmed fraud when None): the label input of the model.  Report time, not
    event time: a fraud is not known before its label arrives."""
    return {t: (r >= 0) & (r <= until_ms) if until_ms is not None else r >= 0
            for t, r in data.reported_ms.items()}


def label_time_ms(data: GraphData, known: dict[str, np.ndarray]) -> int | None:
    """The latest report time among the ``known`` frauds (None: none known)."""
    times = [int(data.reported_ms[t][k].max()) for t, k in known.items() if k.any()]
    return max(times, default=None)
