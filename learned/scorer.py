"""Scoring with a trained model: probabilities and per-transaction explanations.

A :class:`Scorer` is built from a model's LightGBM text, the names of the
columns it uses and the names of the full feature vector, and takes full-vector
matrices as the daemon computes them: it picks the model's columns itself.
Prediction is one LightGBM call per matrix, on one thread by default (the
daemon's other work keeps the cores busy; ``threads`` raises it: LightGBM's
thread pool persists, so a larger count costs no start-up on small batches).
:meth:`Scorer.explain` gives the features that push a transaction's raw score up
the most, by path attribution (:class:`Paths`): each split on the way from a
tree's root to the row's leaf credits its feature with the change of the node's
value, so a row's contributions and the trees' base value add up to its raw score.
That costs one ``pred_leaf`` call per member (as cheap as a prediction) and one
gather from a per-leaf table (built on the first explanation): about 0.5 ms a call
and 35 µs a row for a 5-member model of 317 trees, where tree SHAP
(``pred_contrib``) cost 1.7 ms a row, 200 times a prediction, on every review and
block.  Their first reasons mostly agree (tested).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def ensemble_text(texts: Sequence[str]) -> str:
    """One model text for several members: a JSON array (one member: its own text)."""
    return texts[0] if len(texts) == 1 else json.dumps(list(texts))


def members(model_text: str) -> list[str]:
    """The member texts of a model text (:func:`ensemble_text`)."""
    if model_text.startswith("["):
        texts = json.loads(model_text)
        if not isinstance(texts, list) or not texts or \
                not all(isinstance(t, str) for t in texts):
            raise ValueError("an ensemble's model text is a non-empty JSON array of texts")
        return texts
    return [model_text]


def column_positions(columns: Sequence[str], feature_names: Sequence[str]) -> npt.NDArray[np.intp]:
    """Positions of ``columns`` in the full vector; raises ValueError for unknown or repeated."""
    where = {name: i for i, name in enumerate(feature_names)}
    if len(where) != len(feature_names):
        raise ValueError("feature_names has repeated names")
    unknown = [c for c in columns if c not in where]
    if unknown:
        raise ValueError(f"columns not in feature_names: {unknown}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns has repeated names: {list(columns)}")
    return np.array([where[c] for c in columns], dtype=np.intp)


class Paths:
    """Path attributions of one LightGBM booster, tabled per leaf.

    For a leaf of a tree, the attribution of feature *f* is the sum, over the splits
    on *f* along the root-to-leaf path, of the child's value minus the node's value
    (LightGBM's ``internal_value``/``leaf_value``, shrinkage included).  ``table`` holds
    that vector for every leaf of every tree (the rows of tree *t* start at
    ``offsets[t]``); ``base`` is the sum of the roots' values.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        dump = booster.dump_model()
        trees = [info["tree_structure"] for info in dump["tree_info"]]
        width = int(dump["max_feature_idx"]) + 1
        leaves = [int(info["num_leaves"]) for info in dump["tree_info"]]
        self.offsets = np.cumsum([0, *leaves])[:-1].astype(np.intp)
        self.table = np.zeros((sum(leaves), width), dtype=np.float64)
        self.base = 0.0
        for t, root in enumerate(trees):
            self.base += _value(root)
            stack: list[tuple[dict[str, Any], dict[int, float]]] = [(root, {})]
            while stack:
                node, path = stack.pop()
                if "leaf_value" in node:
                    row = self.table[self.offsets[t] + int(node.get("leaf_index", 0))]
                    for feature, change in path.items():
                        row[feature] = change
                    continue
                feature, value = int(node["split_feature"]), _value(node)
                for child in (node["left_child"], node["right_child"]):
                    step = dict(path)
                    step[feature] = step.get(feature, 0.0) + _value(child) - value
                    stack.append((child, step))

    def contributions(self, leaves: npt.NDArray[Any]) -> Floats:
        """Rows by features: the attributions of rows whose leaves (``pred_leaf``) are given.
        One gather per chunk of rows (rows by trees by features of a chunk stay under
        :data:`GATHER_CELLS`)."""
        out = np.zeros((leaves.shape[0], self.table.shape[1]), dtype=np.float64)
        if not self.offsets.size:
            return out
        chunk = max(1, GATHER_CELLS // (self.offsets.size * self.table.shape[1]))
        for start in range(0, leaves.shape[0], chunk):
            rows = self.offsets + leaves[start:start + chunk]
            out[start:start + chunk] = self.table[rows].sum(axis=1)
        return out


GATHER_CELLS = 2_000_000  # float64 cells of one gather in Paths.contributions (16 MB)


def _value(node: dict[str, Any]) -> float:
    return float(node["leaf_value"] if "leaf_value" in node else node["internal_value"])


class Scorer:
    """A loaded model that scores full feature vectors.

    Args:
        model_text: LightGBM ``model_to_string()`` of a model trained on ``columns``, or
            an ensemble: a JSON array of such texts (:func:`ensemble_text`), whose
            probabilities are averaged and whose contributions are averaged too.
        columns: the feature names the model uses, in its order.
        feature_names: the names of the full vector's columns.
        threads: LightGBM threads per predict call.

    Raises ValueError when the columns are not in ``feature_names`` or are not
    the features the model was trained on.
    """

    def __init__(
        self,
        model_text: str,
        columns: Sequence[str],
        feature_names: Sequence[str],
        threads: int = 1,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._threads = threads
        self.columns = tuple(columns)
        self.feature_names = tuple(feature_names)
        self._positions = column_positions(self.columns, self.feature_names)
        self._all_columns = self.columns == self.feature_names
        self._boosters = [lgb.Booster(model_str=text) for text in members(model_text)]
        for booster in self._boosters:
            if tuple(booster.feature_name()) != self.columns:
                raise ValueError(
                    f"the model was trained on {booster.feature_name()}, not {list(self.columns)}"
                )

    @cached_property
    def _paths(self) -> list[Paths]:
        """Built on the first explanation: training, evaluation and replays never explain."""
        return [Paths(booster) for booster in self._boosters]

    @property
    def base(self) -> float:
        """The mean of the members' base values: with :meth:`contributions`, the raw score."""
        return float(np.mean([paths.base for paths in self._paths]))

    def _model_input(self, X_full: npt.ArrayLike) -> npt.NDArray[Any]:
        matrix = np.asarray(X_full)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected rows by {len(self.feature_names)} features, got shape {matrix.shape}"
            )
        if matrix.dtype not in (np.float32, np.float64):
            matrix = matrix.astype(np.float32)
        if self._all_columns:
            return np.ascontiguousarray(matrix)
        return matrix[:, self._positions]

    def predict(self, X_full: npt.ArrayLike) -> Floats:
        """Fraud probability per row of a full-vector matrix (float64, one per row)."""
        matrix = self._model_input(X_full)
        if matrix.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        scores = [np.asarray(b.predict(matrix, num_threads=self._threads), dtype=np.float64)
                  for b in self._boosters]
        return np.asarray(np.mean(scores, axis=0), dtype=np.float64)

    def explain(
        self, X_full: npt.ArrayLike, rows: Sequence[int], top: int = 3
    ) -> list[list[tuple[str, float]]]:
        """For each given row position: up to ``top`` (feature, contribution) pairs.

        The features with the largest positive contributions to the row's raw score
        (log-odds), largest first; features that lower the score are never listed.
        """
        if top < 0:
            raise ValueError(f"top must be >= 0, got {top}")
        return [self._top_positive(row, top) for row in self.contributions(X_full, rows)]

    def contributions(self, X_full: npt.ArrayLike, rows: Sequence[int]) -> Floats:
        """The given rows by the model's columns: each feature's share of the raw score
        (log-odds, the members' mean), by path attribution; a row's shares plus
        :attr:`base` make its raw score."""
        positions = np.asarray(rows, dtype=np.intp).reshape(-1)
        matrix = self._model_input(X_full)
        if positions.size == 0:
            return np.empty((0, len(self.columns)), dtype=np.float64)
        picked = matrix[positions]
        return np.asarray(np.mean([
            paths.contributions(np.asarray(
                b.predict(picked, pred_leaf=True, num_threads=self._threads), dtype=np.intp
            ).reshape(positions.size, -1))
            for b, paths in zip(self._boosters, self._paths, strict=True)], axis=0),
            dtype=np.float64)

    def _top_positive(self, contributions: Floats, top: int) -> list[tuple[str, float]]:
        order = np.argsort(-contributions, kind="stable")[:top]
        return [(self.columns[j], float(contributions[j])) for j in order if contributions[j] > 0]
