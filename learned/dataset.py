"""The logged feature vectors and the labels that are settled as of a time.

The daemon logs one float32 feature vector per transaction at decision time,
with the transaction id, its event time and its card.  :class:`Logged` holds
those rows, one per transaction id (a redelivered record replaces the earlier
one), always sorted by ``(event_ms, id)`` so that nothing downstream depends on
the order in which records arrived.

Fraud labels arrive late, each with the time it was reported.  :func:`settle`
says which rows a model trained *as of* a time may learn from and with which
label: a fraud counts once it is reported, a genuine transaction only once the
label delay has passed without a report.  A label reported after the cut-off has
no influence at all, exactly as if it did not exist yet.  :func:`time_split`
cuts the settled rows into an older training part and the newest rows as a
validation window, never splitting rows of the same event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Index = npt.NDArray[np.int64]
Labels = npt.NDArray[np.int8]


@dataclass(frozen=True)
class Logged:
    """Feature vectors as logged at decision time, one row per transaction id.

    Construction validates the shapes, coerces ``event_ms`` to int64 and ``X`` to
    float32, and sorts every field by ``(event_ms, id)``; ids must be unique
    (:meth:`from_rows` resolves redeliveries before constructing).
    """

    ids: list[str]
    event_ms: npt.NDArray[np.int64]
    cards: list[str]
    X: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        event_ms = np.asarray(self.event_ms, dtype=np.int64).reshape(-1)
        X = np.asarray(self.X, dtype=np.float32)
        n = len(self.ids)
        if X.ndim != 2 or X.shape[0] != n or event_ms.shape[0] != n or len(self.cards) != n:
            raise ValueError(
                f"Logged needs n ids, n event times, n cards and an n-by-f matrix; got "
                f"{n} ids, {event_ms.shape[0]} event times, {len(self.cards)} cards, "
                f"X of shape {X.shape}"
            )
        if len(set(self.ids)) != n:
            raise ValueError("Logged ids must be unique (use Logged.from_rows for redeliveries)")
        order = np.lexsort((np.asarray(self.ids, dtype=str), event_ms)) if n else np.arange(0)
        object.__setattr__(self, "ids", [self.ids[i] for i in order])
        object.__setattr__(self, "event_ms", np.ascontiguousarray(event_ms[order]))
        object.__setattr__(self, "cards", [self.cards[i] for i in order])
        object.__setattr__(self, "X", np.ascontiguousarray(X[order]))

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[str, int, str, npt.ArrayLike]], n_features: int
    ) -> Logged:
        """Rows of ``(id, event_ms, card, vector)``; of rows with the same id the last wins."""
        latest: dict[str, tuple[int, str, npt.NDArray[np.float32]]] = {}
        for tx_id, event_ms, card, vector in rows:
            values = np.asarray(vector, dtype=np.float32).reshape(-1)
            if values.shape[0] != n_features:
                raise ValueError(
                    f"row {tx_id!r} has {values.shape[0]} features, expected {n_features}"
                )
            latest[tx_id] = (int(event_ms), card, values)
        ids = list(latest)
        X = (
            np.stack([latest[i][2] for i in ids])
            if ids
            else np.empty((0, n_features), dtype=np.float32)
        )
        return cls(
            ids=ids,
            event_ms=np.array([latest[i][0] for i in ids], dtype=np.int64),
            cards=[latest[i][1] for i in ids],
            X=X,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, which: npt.ArrayLike) -> Logged:
        """The rows picked by a boolean mask or by integer positions (re-sorted as always)."""
        index = np.asarray(which)
        if index.dtype == np.bool_:
            if index.shape != (len(self),):
                raise ValueError(f"mask of shape {index.shape} for {len(self)} rows")
            index = np.flatnonzero(index)
        index = index.astype(np.int64, copy=False).reshape(-1)
        return Logged(
            ids=[self.ids[i] for i in index],
            event_ms=self.event_ms[index],
            cards=[self.cards[i] for i in index],
            X=self.X[index],
        )


def settle(
    logged: Logged, frauds: Mapping[str, int], as_of_ms: int, label_delay_ms: int
) -> tuple[Index, Labels]:
    """Positions (ascending) and labels of the rows usable for training as of ``as_of_ms``.

    ``frauds`` maps a transaction id to the time its fraud label was reported.
    A row is usable when it is settled, ``event_ms <= as_of_ms - label_delay_ms``:
    y=1 if its fraud label was reported by ``as_of_ms``, else y=0.  Every newer
    row (a recent transaction whose label may still come) is left out, frauds
    reported early included: the newest days would otherwise hold frauds only and
    bias the validation window and the thresholds set on it.  A label reported
    after ``as_of_ms`` is treated exactly like no label.
    """
    if label_delay_ms < 0:
        raise ValueError(f"label_delay_ms must be >= 0, got {label_delay_ms}")
    never = as_of_ms + 1
    reported = np.array([frauds.get(i, never) <= as_of_ms for i in logged.ids], dtype=bool)
    index = np.flatnonzero(logged.event_ms <= as_of_ms - label_delay_ms).astype(np.int64)
    return index, reported[index].astype(np.int8)


def time_split(
    event_ms_of_selected: Sequence[int] | npt.NDArray[np.int64], valid_share: float = 0.2
) -> tuple[Index, Index]:
    """Positions (ascending) of the older training part and of the newest validation window.

    The validation window starts at the event time of the row that begins the
    newest ``valid_share`` of rows (at least one row); every row with that event
    time or a later one belongs to it, so rows of equal event time never straddle
    the split (ties make the window slightly larger than ``valid_share``).
    """
    if not 0.0 < valid_share < 1.0:
        raise ValueError(f"valid_share must be in (0, 1), got {valid_share}")
    times = np.asarray(event_ms_of_selected, dtype=np.int64).reshape(-1)
    n = times.shape[0]
    if n == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    n_valid = min(n, max(1, round(n * valid_share)))
    start_ms = np.sort(times, kind="stable")[n - n_valid]
    in_valid = times >= start_ms
    return (
        np.flatnonzero(~in_valid).astype(np.int64),
        np.flatnonzero(in_valid).astype(np.int64),
    )
