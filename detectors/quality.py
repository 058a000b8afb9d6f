"""Detection quality against ground truth (pure): per-scenario recall, precision.

``truth`` maps the transaction id of every fraudulent transaction to its
scenario; every other decided transaction is genuine.  A transaction counts as
detected when it is reviewed or blocked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
