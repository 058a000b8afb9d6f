"""One micro-batch through the detectors (pure): rules + graph facts → decisions + flags.

:class:`Detector` holds the rule state; :meth:`Detector.decide_batch` decides
every transaction of a batch in stream order.  Entities that a firing reason
flags (``Reason.flag``, and ``blocklist.flag_on_block`` for blocked
transactions) become blocklist entries; they are added to the blocklist view at
once, so the next transaction of the same batch already sees them.  Every
transaction sees the blocklist as of its own event time (entries carry
``since_ms`` in their evidence) and the graph as of its time (``graph_checks``).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from detectors import graph_checks
from detectors.blocklist import Entry, FlaggedTransaction, NewEntry
from detectors.config import DetectorConfig, ModelConfig
from detectors.decision import (
    ALLOW,
    BLOCK,
    MODEL,
    REVIEW,
    DecisionRecord,
    Reason,
    ReasonRecord,
    Verdict,
    decide,
)
from detectors.features import INDEX, FeatureState
from detectors.graph_checks import BatchFacts
from detectors.rules import BlockedLookup, RuleEngine, entity_of
from ingest.transaction import Transaction, iso_from_ms


class BlocklistView(Protocol):
    def hit(self, entity_type: str, entity_id: str) -> Entry | None: ...

    def add_local(self, entries: list[NewEntry]) -> None: ...

    def revoked(self, entity_type: str, entity_id: str) -> bool: ...


class Scorer(Protocol):
    """A promoted model as the detector uses it (``fraudgraph.model_service`` builds one
    from the registry): probabilities for a batch's feature rows (one call), the top
    contributing features of some rows, and its own thresholds."""

    version: str
    review: float
    block: float

    def predict(self, rows: Sequence[Sequence[float]]) -> Sequence[float]: ...

    def explain(self, rows: Sequence[Sequence[float]], which: Sequence[int],
                top: int) -> list[list[tuple[str, float]]]: ...


@dataclass(frozen=True)
class Decided:
    transaction: Transaction
    verdict: Verdict
    record: DecisionRecord
    #: the vector the decision saw: float32, little-endian (empty: the model is off)
    features: bytes = b""


def rules_version(config: DetectorConfig) -> str:
    """``<name>-<hash of every setting but the model's>``: two daemons with equal versions
    and the same model (``model_version``) decide alike; changing a model setting keeps
    the rule-state checkpoint (it is the rules' state), except turning the model on or
    off (off, the feature state is not fed: a model must not start from it)."""
    settings = {k: v for k, v in asdict(config).items() if k != "model"}
    settings["model_enabled"] = config.model.enabled
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return f"{config.name}-{digest[:10]}"


class Detector:
    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.engine = RuleEngine(config)
        self.features = FeatureState(config.state.max_cards)
        self.scorer: Scorer | None = None  # a promoted model (None: the rules decide)
        self.version = rules_version(config)

    def snapshot(self) -> dict[str, Any]:
        """Rule and feature state, for the checkpoint (see :meth:`RuleEngine.snapshot`)."""
        return {**self.engine.snapshot(), "features": self.features.snapshot()}

    def restore(self, state: dict[str, Any]) -> None:
        self.engine.restore(state)
        self.features = FeatureState(self.config.state.max_cards)
        self.features.restore(state["features"])

    def decide_batch(self, transactions: list[Transaction], facts: BatchFacts | None,
                     blocklist: BlocklistView, now_ms: int,
                     produced_ms: list[int] | None = None
                     ) -> tuple[list[Decided], list[NewEntry]]:
        """Decide each transaction; return the decisions and the entities newly flagged.
        ``produced_ms[i]`` (optional) is when ``transactions[i]`` entered Kafka."""
        config = self.config
        flags: dict[tuple[str, str], NewEntry] = {}
        verdicts, rows = [], []
        vectors = config.model.enabled  # off: a rules engine, nothing to learn from
        self.engine.clock.observe(tx.event_ms for tx in transactions)
        graph = facts if facts is not None and config.graph.enabled else None
        for tx in transactions:
            blocked = _as_of(blocklist, tx.event_ms)
            reasons = self.engine.evaluate(tx, blocked, graph)
            if graph is not None:
                reasons += graph_checks.reasons_for(tx, graph, config.graph)
            verdict = decide(reasons, config.decision)
            if vectors:
                rows.append(self.features.vector(tx, reasons, facts, config.graph))
            # the rules' verdict shapes the state and the blocklist, whatever the model
            # says: the logged features never depend on which model was promoted
            self.engine.learn(tx, verdict.decision != ALLOW)
            if verdict.decision != ALLOW:
                new = self._flags(tx, verdict, blocked, blocklist.revoked)
                if new:
                    blocklist.add_local(new)
                    flags.update((e.key, e) for e in new)
            verdicts.append(verdict)
        scored = self._score(verdicts, rows) if self.scorer is not None and rows else None
        decided = []
        for i, tx in enumerate(transactions):
            verdict, model = scored[i] if scored is not None else (verdicts[i], None)
            produced = produced_ms[i] if produced_ms is not None else None
            decided.append(Decided(tx, verdict,
                                   self.record(tx, verdict, now_ms, produced, model),
                                   _le_float32(rows[i]) if vectors else b""))
        return decided, list(flags.values())

    def _score(self, verdicts: list[Verdict], rows: list[list[float]]
               ) -> list[tuple[Verdict, str | None]]:
        """The model's verdicts (one predict call for the batch): its probability is the
        score of every transaction no certain reason decides, against its thresholds
        (or the preset's fixed ones); a review or block lists the top contributing
        features first.  Returns (verdict, model version or None) per transaction."""
        assert self.scorer is not None
        model = self.config.model
        review, block = model_thresholds(model, self.scorer.review, self.scorer.block)
        out: list[tuple[Verdict, str | None]] = []
        flagged = []
        for i, (verdict, p) in enumerate(zip(verdicts, self.scorer.predict(rows), strict=True)):
            if certain(model, (r.code for r in verdict.reasons)):
                out.append((verdict, None))
                continue
            decision = BLOCK if p >= block else REVIEW if p >= review else ALLOW
            out.append((Verdict(decision, round(float(p), 6), verdict.reasons),
                        self.scorer.version))
            if decision != ALLOW:
                flagged.append(i)
        for i, top in zip(flagged, self.scorer.explain(rows, flagged, model.top_reasons),
                          strict=True):
            verdict, version = out[i]
            detail = ", ".join(f"{name}={rows[i][INDEX[name]]:g} (+{weight:.2f})"
                               for name, weight in top)
            reason = Reason("model", MODEL, f"model {version}: {detail or 'overall pattern'}",
                            verdict.score)
            out[i] = (Verdict(verdict.decision, verdict.score, (reason, *verdict.reasons)),
                      version)
        return out

    def _flags(self, tx: Transaction, verdict: Verdict, blocked: BlockedLookup,
               revoked: Callable[[str, str], bool]) -> list[NewEntry]:
        wanted: dict[str, tuple[str, str, str]] = {}
        for reason in verdict.reasons:
            for entity_type in reason.flag:
                wanted.setdefault(entity_type, (reason.code, reason.detector, reason.detail))
        if verdict.decision == BLOCK and verdict.reasons:
            top = verdict.reasons[0]
            for entity_type in self.config.blocklist.flag_on_block:
                wanted.setdefault(entity_type, (top.code, top.detector, top.detail))
        new = []
        for entity_type, (code, detector, detail) in wanted.items():
            entity_id = entity_of(tx, entity_type)
            if (entity_id is None or blocked(entity_type, entity_id) is not None
                    or revoked(entity_type, entity_id)):
                continue  # listed already, or a person revoked it
            new.append(NewEntry(entity_type, entity_id, code, detector, verdict.score,
                                {"transaction_id": tx.transaction_id, "detail": detail,
                                 # from the next ms: a redelivered flagging
                                 # transaction does not meet its own entry
                                 "rules_version": self.version, SINCE: tx.event_ms + 1},
                                self.config.blocklist.ttl_ms // 1000))
        return new

    def record(self, tx: Transaction, verdict: Verdict, now_ms: int,
               produced_ms: int | None = None, model_version: str | None = None
               ) -> DecisionRecord:
        return DecisionRecord(
            transaction_id=tx.transaction_id, decision=verdict.decision, score=verdict.score,
            reasons=[ReasonRecord(r.code, r.detector, r.detail) for r in verdict.reasons],
            card_id=tx.card_id, user_id=tx.user_id, site_id=tx.site_id,
            device_id=tx.device_id, ip_address=tx.ip_address, amount_minor=tx.amount_minor,
            currency=tx.currency, country=tx.country, event_time=iso_from_ms(tx.event_ms),
            event_ms=tx.event_ms, decided_ms=now_ms, rules_version=self.version,
            model_version=model_version, produced_ms=produced_ms,
            evidence=None if verdict.decision == ALLOW else
            f"{EXPLAIN} -p transaction_id={shlex.quote(tx.transaction_id)}")


def _le_float32(row: list[float]) -> bytes:
    """A vector as logged: float32, little-endian (``TrainingRecord.vector``)."""
    values = array("f", row)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def model_thresholds(config: ModelConfig, review: float, block: float) -> tuple[float, float]:
    """The review and block probabilities: the preset's fixed ones, else the model's."""
    review = config.review_threshold or review
    return review, max(config.block_threshold or block, review)


def certain(config: ModelConfig, codes: Iterable[str]) -> bool:
    """A reason among ``codes`` decides alone, whatever the model says."""
    return any(code in config.certain for code in codes)


EXPLAIN = "fraudgraph query run explain_decision"
#: evidence key of a blocklist entry: the event time from which it counts (an entry
#: without it, such as a manual one, counts for every transaction)
SINCE = "since_ms"


def _as_of(blocklist: BlocklistView, event_ms: int) -> BlockedLookup:
    """The blocklist as a transaction at ``event_ms`` sees it: an entry whose evidence
    says it counts from a later event time (a label reported later, a ring found
    later, a flag raised by a later transaction) is not there yet."""
    def blocked(entity_type: str, entity_id: str) -> str | None:
        entry = blocklist.hit(entity_type, entity_id)
        if entry is None or entry.evidence.get(SINCE, event_ms) > event_ms:
            return None
        return f"{entry.source}: {entry.reason}"
    return blocked


def flagged_row(d: Decided) -> FlaggedTransaction:
    r, tx = d.record, d.transaction
    return FlaggedTransaction(
        transaction_id=r.transaction_id, decision=r.decision, score=r.score,
        reasons=[{"code": x.code, "detector": x.detector, "detail": x.detail} for x in r.reasons],
        card_id=r.card_id, user_id=r.user_id, site_id=r.site_id, device_id=r.device_id,
        amount_minor=r.amount_minor, currency=r.currency, event_ms=r.event_ms,
        decided_ms=r.decided_ms, country=tx.country, ip_address=tx.ip_address,
        merchant_category=tx.merchant_category, card_present=tx.card_present)
