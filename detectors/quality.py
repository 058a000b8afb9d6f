"""Detection quality against ground truth (pure): per-scenario recall and precision,
ROC AUC, average precision, Card Precision@k per day.

``truth`` maps the transaction id of every fraudulent transaction to its
scenario; every other decided transaction is genuine.  A transaction counts as
detected when it is reviewed or blocked.

The evaluation report (:func:`evaluate`) cannot be flattered by transactions the
engine never decided: a fraud-labelled transaction without a decision is a row
too (decision :data:`UNDECIDED`, score :data:`UNDECIDED_SCORE`), so it is a missed
fraud in recall and ranks lowest in AUC-ROC and average precision.  AUC-ROC and
average precision are scikit-learn's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

GENUINE = "genuine"


@dataclass(frozen=True)
class ScenarioRow:
    scenario: str
    transactions: int
    reviewed: int
    blocked: int

    @property
    def recall(self) -> float:
        return (self.reviewed + self.blocked) / self.transactions if self.transactions else 0.0


@dataclass(frozen=True)
class Quality:
    rows: list[ScenarioRow]
    flagged_precision: float  # share of fraud among review + block
    block_precision: float  # share of fraud among block
    fraud_recall: float


def measure(decisions: Iterable[tuple[str, str]], truth: Mapping[str, str]) -> Quality:
    counts: dict[str, Counter[str]] = {}
    for transaction_id, decision in decisions:
        scenario = truth.get(transaction_id, GENUINE)
        counts.setdefault(scenario, Counter())[decision] += 1
    rows = [ScenarioRow(name, sum(c.values()), c["review"], c["block"])
            for name, c in sorted(counts.items(), key=lambda kv: (kv[0] == GENUINE, kv[0]))]
    fraud = [r for r in rows if r.scenario != GENUINE]
    genuine = next((r for r in rows if r.scenario == GENUINE), ScenarioRow(GENUINE, 0, 0, 0))
    flagged_fraud = sum(r.reviewed + r.blocked for r in fraud)
    blocked_fraud = sum(r.blocked for r in fraud)
    flagged = flagged_fraud + genuine.reviewed + genuine.blocked
    blocked = blocked_fraud + genuine.blocked
    total_fraud = sum(r.transactions for r in fraud)
    return Quality(rows, flagged_fraud / flagged if flagged else 0.0,
                   blocked_fraud / blocked if blocked else 0.0,
                   flagged_fraud / total_fraud if total_fraud else 0.0)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


# -- ranking metrics and the evaluation report (SPEC §7) --------------------------------

DAY_MS = 86_400_000
UNDECIDED = "undecided"  # the decision of a labelled transaction the engine never decided
UNDECIDED_SCORE = 0.0  # its score: the lowest a decision can have


@dataclass(frozen=True)
class Scored:
    """One transaction joined with the ground truth (``scenario`` None: genuine): a
    decided one, or a fraud-labelled one without a decision (:func:`undecided`)."""

    transaction_id: str
    card_id: str
    event_ms: int
    score: float
    decision: str
    scenario: str | None
    latency_ms: float | None = None

    @property
    def fraud(self) -> bool:
        return self.scenario is not None

    @property
    def decided(self) -> bool:
        return self.decision != UNDECIDED


def undecided(transaction_id: str, card_id: str, event_ms: int, scenario: str) -> Scored:
    """The row of a fraud the engine never decided: never flagged, lowest score."""
    return Scored(transaction_id, card_id, event_ms, UNDECIDED_SCORE, UNDECIDED, scenario)


@dataclass(frozen=True)
class Counts:
    """Precision, recall and F1 of one operating point (flagged = at or above it)."""

    true_positives: int
    flagged: int
    positives: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.flagged if self.flagged else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def at_decision(rows: Iterable[Scored], decisions: frozenset[str]) -> Counts:
    """Counts when ``decisions`` (e.g. {review, block}) count as flagged."""
    rows = list(rows)
    return Counts(sum(1 for r in rows if r.fraud and r.decision in decisions),
                  sum(1 for r in rows if r.decision in decisions),
                  sum(1 for r in rows if r.fraud))


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """scikit-learn's area under the ROC curve (ties count one half); None where it is
    undefined (labels of one class only)."""
    if all(labels) or not any(labels):
        return None
    from sklearn.metrics import roc_auc_score  # imported here: scipy loads in ~0.7 s

    return float(roc_auc_score(labels, scores))


def average_precision(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """scikit-learn's average precision (the step-wise area under the precision-recall
    curve; tied scores form one threshold); None where it is undefined (no positive)."""
    if not any(labels):
        return None
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def card_precision_at_k(rows: Iterable[Scored], k: int) -> tuple[float, dict[str, float]]:
    """Card Precision@k per day: rank each day's cards by their highest score that day
    and take the share of fraudulent cards (any fraud that day) among the top k.

    A day with fewer than k cards divides by its number of cards; cards tied with
    the k-th score share the remaining places (expected precision under a random
    tie-break); days without transactions do not exist and do not count.  Only
    decided transactions take part: an undecided one was never ranked before an
    analyst.  Returns the mean over days and the value per day (``YYYY-MM-DD``)."""
    days: dict[int, dict[str, tuple[float, bool]]] = {}
    for r in rows:
        if not r.decided:
            continue
        cards = days.setdefault(r.event_ms // DAY_MS, {})
        best, fraud = cards.get(r.card_id, (-1.0, False))
        cards[r.card_id] = (max(best, r.score), fraud or r.fraud)
    per_day = {}
    for day, cards in sorted(days.items()):
        ranked = sorted(cards.values(), key=lambda c: -c[0])
        places = min(k, len(ranked))
        cutoff = ranked[places - 1][0]
        above = [c for c in ranked if c[0] > cutoff]
        tied = [c for c in ranked if c[0] == cutoff]
        tied_frauds = sum(c[1] for c in tied)
        hits = sum(c[1] for c in above) + (places - len(above)) * tied_frauds / len(tied)
        per_day[_date(day)] = hits / places
    mean = sum(per_day.values()) / len(per_day) if per_day else 0.0
    return mean, per_day


def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class EvaluationRow:
    """One line of the report: all transactions, or genuine + one scenario.  ``frauds``
    counts the ``undecided`` ones too; ``auc`` / ``average_precision`` are None where
    undefined (one class only)."""

    name: str
    transactions: int
    frauds: int
    review_or_block: Counts
    block: Counts
    auc: float | None
    average_precision: float | None
    undecided: int = 0  # frauds without a decision (missed, score 0)


def evaluate(rows: list[Scored]) -> list[EvaluationRow]:
    """Overall, then per scenario (that scenario's frauds against all genuine).  Rows
    of undecided frauds (:func:`undecided`) count as flagged by nothing and score
    :data:`UNDECIDED_SCORE`."""
    scenarios = sorted({r.scenario for r in rows if r.scenario is not None})
    genuine = [r for r in rows if not r.fraud]
    groups = [("all", rows)] + [(s, genuine + [r for r in rows if r.scenario == s])
                                for s in scenarios]
    flagged, blocked = frozenset({"review", "block"}), frozenset({"block"})
    table = []
    for name, group in groups:
        labels = [r.fraud for r in group]
        scores = [r.score for r in group]
        table.append(EvaluationRow(name, len(group), sum(labels), at_decision(group, flagged),
                                   at_decision(group, blocked), roc_auc(labels, scores),
                                   average_precision(labels, scores),
                                   sum(1 for r in group if not r.decided)))
    return table
