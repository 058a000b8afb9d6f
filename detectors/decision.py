"""Reasons, the decision combiner and the decision record (pure).

Every detector (streaming rule, Cypher check, GNN score) produces
:class:`Reason` values; :func:`decide` combines them into one score with a
noisy-or (``1 - prod(1 - weight)``) and compares it with the review and block
thresholds.  The decision lists every reason, strongest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from detectors.config import DecisionConfig

ALLOW, REVIEW, BLOCK = "allow", "review", "block"
#: Detector names: also the blocklist ``source`` of what they flag.
RULE, CYPHER, GNN, MODEL = "rule", "cypher", "gnn", "model"


@dataclass(frozen=True)
class Reason:
    """Why a transaction is risky: a stable ``code`` (bounded, used as a metric label),
    the ``detector`` that found it, a human ``detail``, its ``weight`` in [0, 1] and the
    entity types of the transaction to blocklist when it fires (``flag``)."""

    code: str
    detector: str
    detail: str
    weight: float
    flag: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    decision: str
    score: float
    reasons: tuple[Reason, ...]


def decide(reasons: list[Reason], config: DecisionConfig) -> Verdict:
    """Combine reasons (one per code, the strongest kept) into a decision."""
    strongest: dict[str, Reason] = {}
    for reason in reasons:
        kept = strongest.get(reason.code)
        if kept is None or reason.weight > kept.weight:
            strongest[reason.code] = reason
    ordered = tuple(sorted(strongest.values(), key=lambda r: (-r.weight, r.code)))
    keep = 1.0
    for reason in ordered:
        keep *= 1.0 - reason.weight
    score = round(1.0 - keep, 6)
    if score >= config.block_threshold:
        decision = BLOCK
    elif score >= config.review_threshold:
        decision = REVIEW
    else:
        decision = ALLOW
    return Verdict(decision, score, ordered)


class ReasonRecord(msgspec.Struct, frozen=True):
    code: str
    detector: str
    detail: str


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One record per input transaction on the ``decisions`` topic (key ``transaction_id``)."""

    transaction_id: str
    decision: str
    score: float
    reasons: list[ReasonRecord]
    card_id: str
    user_id: str
    site_id: str
    device_id: str | None
    ip_address: str | None
    amount_minor: int
    currency: str
    country: str
    event_time: str
    event_ms: int
    decided_ms: int
    rules_version: str
    model_version: str | None = None
    produced_ms: int | None = None  # Kafka timestamp of the input: latency = decided - produced
    #: review/block only: the command that shows the evidence (graph neighbourhood,
    #: sharing, rings, nearby fraud); in Neo4j Browser, the guide's "explain a
    #: decision" step with ``:param transaction_id => "<id>"``
    evidence: str | None = None
