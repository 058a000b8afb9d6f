"""Review capacity: a score threshold from k cards a day, and Card Precision@k.

A fraud team checks cards, not transactions, and has a fixed capacity of about
``k`` cards a day; what matters is whether the ``k`` riskiest cards of a day
(ranked by their highest transaction score that day) are the compromised ones.
A day is ``event_ms // DAY_MS`` (UTC days).  Ties between cards of equal score
are broken by card id (ascending), so results never depend on row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

DAY_MS = 86_400_000
EMPTY_THRESHOLD = 0.5

Floats = npt.NDArray[np.floating[Any]]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _CardDays:
    """One entry per (day, card), ordered by day, then score descending, then card id.

    ``rank`` is the card's position within its day (0 = riskiest).
    """

    day: Ints
    score: Floats
    fraud: npt.NDArray[np.bool_]
    rank: Ints
    day_starts: Ints


def _card_days(
    scores: npt.ArrayLike, labels: npt.ArrayLike, event_ms: npt.ArrayLike, cards: Sequence[str]
) -> _CardDays:
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    label = np.asarray(labels).reshape(-1) > 0
    day = np.asarray(event_ms, dtype=np.int64).reshape(-1) // DAY_MS
    if not score.size == label.size == day.size == len(cards):
        raise ValueError("scores, labels, event_ms and cards must have the same length")
    _, card = np.unique(np.asarray(cards, dtype=str), return_inverse=True)
    order = np.lexsort((card, day))
    day, card, score, label = day[order], card[order], score[order], label[order]
    new_group = np.r_[True, (np.diff(day) != 0) | (np.diff(card) != 0)]
    starts = np.flatnonzero(new_group)
    group_day, group_card = day[starts], card[starts]
    group_score = np.maximum.reduceat(score, starts)
    group_fraud = np.logical_or.reduceat(label, starts)
    ranked = np.lexsort((group_card, -group_score, group_day))
    group_day = group_day[ranked]
    day_starts = np.flatnonzero(np.r_[True, np.diff(group_day) != 0]).astype(np.int64)
    day_sizes = np.diff(np.r_[day_starts, group_day.size])
    rank = np.arange(group_day.size) - np.repeat(day_starts, day_sizes)
    return _CardDays(
        day=group_day,
        score=group_score[ranked],
        fraud=group_fraud[ranked],
        rank=rank.astype(np.int64),
        day_starts=day_starts,
    )


def threshold_for_capacity(
    scores: npt.ArrayLike, event_ms: npt.ArrayLike, cards: Sequence[str], k_per_day: int
) -> float:
    """The score threshold at which about ``k_per_day`` distinct cards a day reach it.

    Per day with at least k cards, the k-th highest per-card maximum score; the
    threshold is the median of these per-day values, so that a few unusual days (a
    fraud wave, a partial day at an edge of the window) do not move it the way a
    mean would.  Days with fewer than k cards have no k-th card and are left out:
    they cannot tell where a full day's capacity ends (in a training window they
    are typically the recent days whose genuine rows are not settled yet, so only
    their frauds are there).  When no day has k cards the team can check every
    card: the threshold is the lowest per-card maximum.  Empty input gives 0.5.
    """
    if k_per_day < 1:
        raise ValueError(f"k_per_day must be >= 1, got {k_per_day}")
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    if score.size == 0:
        return EMPTY_THRESHOLD
    days = _card_days(score, np.zeros(score.size), event_ms, cards)
    day_sizes = np.diff(np.r_[days.day_starts, days.day.size])
    full = day_sizes >= k_per_day
    if not full.any():
        return float(days.score.min())
    return float(np.median(days.score[days.day_starts[full] + k_per_day - 1]))


def card_precision_at_k(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    event_ms: npt.ArrayLike,
    cards: Sequence[str],
    k: int,
) -> float:
    """Card Precision@k, averaged over the days of the window (NaN for empty input).

    Per day, the k cards with the highest maximum score that day; the number of
    them with at least one fraud that day, divided by k (as in the Fraud Detection
    Handbook: on a day with fewer than k cards the unused checks count as misses).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    if score.size == 0:
        return float("nan")
    days = _card_days(score, labels, event_ms, cards)
    hits = (days.fraud & (days.rank < k)).astype(np.int64)
    per_day = np.add.reduceat(hits, days.day_starts) / k
    return float(per_day.mean())
