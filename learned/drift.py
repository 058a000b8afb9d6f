"""Feature drift: the population stability index (PSI) of live inputs against training.

A :class:`Reference` holds, per feature, the cut points of up to ten bins taken
at the training rows' deciles, and the training share of rows in each bin.  A
feature with at most ten distinct values gets one bin per value instead.  The
cut points are training values themselves and a bin holds the values in
``(previous cut, cut]``, so no bin is empty in training.  Every feature also has
a *missing* bin (NaN) after its value bins: a feature that starts to go missing
is drift too.

PSI per feature is ``sum((live - train) * ln(live / train))`` over its bins,
with shares clipped to ``EPSILON`` so an empty bin does not make it infinite.
:data:`DRIFT_THRESHOLD` (0.25) is the conventional mark of a significant shift.
:class:`DriftCounter` accumulates bin counts batch by batch (the daemon feeds it
every batch's matrix) and gives the same PSI as :func:`psi` over all rows at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DRIFT_THRESHOLD = 0.25
MAX_BINS = 10
EPSILON = 1e-4

Matrix = npt.NDArray[np.floating[Any]]
Floats = npt.NDArray[np.float64]


def _cut_points(column: Matrix) -> tuple[float, ...]:
    """Cut points of one feature's bins from its non-missing training values."""
    values = np.sort(column[~np.isnan(column)])
    if values.size == 0:
        return ()
    distinct = np.unique(values)
    if distinct.size <= MAX_BINS:
        return tuple(float(v) for v in distinct[:-1])
    probs = np.arange(1, MAX_BINS) / MAX_BINS
    cuts = np.unique(np.quantile(values, probs, method="inverted_cdf"))
    return tuple(float(v) for v in cuts[cuts < values[-1]])


@dataclass(frozen=True)
class Reference:
    """Per feature: bin cut points and the training share of each bin.

    ``edges[j]`` has ``b`` cut points for ``b + 1`` value bins; ``proportions[j]``
    has ``b + 2`` shares: the value bins, then the missing bin.
    """

    edges: tuple[tuple[float, ...], ...]
    proportions: tuple[tuple[float, ...], ...]

    @classmethod
    def of(cls, X: npt.ArrayLike) -> Reference:
        """The reference of a training matrix (rows-by-features)."""
        matrix = _as_matrix(X)
        edges = tuple(_cut_points(matrix[:, j]) for j in range(matrix.shape[1]))
        counts = _BinCounts.of(edges)
        counts.add(matrix)
        rows = max(matrix.shape[0], 1)
        proportions = tuple(tuple(float(c) / rows for c in part) for part in counts.per_feature())
        return cls(edges=edges, proportions=proportions)

    @property
    def n_features(self) -> int:
        return len(self.edges)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form; :meth:`from_json` restores it exactly."""
        return {
            "edges": [list(e) for e in self.edges],
            "proportions": [list(p) for p in self.proportions],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reference:
        edges = tuple(tuple(float(v) for v in e) for e in data["edges"])
        proportions = tuple(tuple(float(v) for v in p) for p in data["proportions"])
        if len(edges) != len(proportions) or any(
            len(p) != len(e) + 2 for e, p in zip(edges, proportions, strict=True)
        ):
            raise ValueError("Reference JSON: each feature needs len(edges) + 2 proportions")
        return cls(edges=edges, proportions=proportions)


def _as_matrix(X: npt.ArrayLike) -> Matrix:
    matrix = np.asarray(X)
    if matrix.ndim != 2:
        raise ValueError(f"expected a rows-by-features matrix, got shape {matrix.shape}")
    return matrix.astype(np.float64, copy=False)


class _BinCounts:
    """Counts of rows per (feature, bin), all features' bins in one flat array."""

    def __init__(self, edges: tuple[tuple[float, ...], ...], offsets: npt.NDArray[np.int64]):
        self._edges = [np.asarray(e, dtype=np.float64) for e in edges]
        self._offsets = offsets
        self.counts = np.zeros(int(offsets[-1]), dtype=np.int64)

    @classmethod
    def of(cls, edges: tuple[tuple[float, ...], ...]) -> _BinCounts:
        sizes = np.array([len(e) + 2 for e in edges], dtype=np.int64)
        return cls(edges, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))

    def add(self, matrix: Matrix) -> None:
        if matrix.shape[1] != len(self._edges):
            raise ValueError(f"{matrix.shape[1]} features, the reference has {len(self._edges)}")
        if matrix.shape[0] == 0:
            return
        bins = np.empty(matrix.shape, dtype=np.int64)
        for j, cuts in enumerate(self._edges):
            column = matrix[:, j]
            value_bin = np.searchsorted(cuts, column, side="left")
            bins[:, j] = np.where(np.isnan(column), cuts.size + 1, value_bin) + self._offsets[j]
        self.counts += np.bincount(bins.ravel(), minlength=self.counts.size)

    def per_feature(self) -> list[npt.NDArray[np.int64]]:
        return [
            self.counts[self._offsets[j] : self._offsets[j + 1]] for j in range(len(self._edges))
        ]


def _psi_of_counts(reference: Reference, counts: _BinCounts, rows: int) -> Floats:
    if rows == 0:
        return np.full(reference.n_features, np.nan)
    out = np.empty(reference.n_features, dtype=np.float64)
    for j, live_counts in enumerate(counts.per_feature()):
        live = np.maximum(live_counts / rows, EPSILON)
        train = np.maximum(np.asarray(reference.proportions[j]), EPSILON)
        out[j] = float(np.sum((live - train) * np.log(live / train)))
    return out


def psi(reference: Reference, X: npt.ArrayLike) -> Floats:
    """PSI per feature of the rows of ``X`` against the reference (NaN for no rows)."""
    counter = DriftCounter(reference)
    counter.add(X)
    return counter.psi()


class DriftCounter:
    """Bin counts accumulated over batches; ``psi()`` equals :func:`psi` over all rows added.

    Not thread-safe; one counter per consumer loop.
    """

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self._counts = _BinCounts.of(reference.edges)
        self._rows = 0

    @property
    def rows(self) -> int:
        """Rows added since construction or the last :meth:`reset`."""
        return self._rows

    def add(self, X: npt.ArrayLike) -> None:
        """Count one batch (rows-by-features, the full feature vector)."""
        matrix = _as_matrix(X)
        self._counts.add(matrix)
        self._rows += matrix.shape[0]

    def psi(self) -> Floats:
        """PSI per feature of the rows added so far (NaN for every feature when none)."""
        return _psi_of_counts(self.reference, self._counts, self._rows)

    def reset(self) -> None:
        self._counts.counts[:] = 0
        self._rows = 0
