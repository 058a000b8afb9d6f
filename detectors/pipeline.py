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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from detectors import graph_checks
from detectors.blocklist import Entry, FlaggedTransaction, NewEntry
from detectors.config import DetectorConfig
from detectors.decision import ALLOW, BLOCK, DecisionRecord, ReasonRecord, Verdict, decide
from detectors.graph_checks import BatchFacts
from detectors.rules import BlockedLookup, RuleEngine, entity_of
from ingest.transaction import Transaction, iso_from_ms


class BlocklistView(Protocol):
    def hit(self, entity_type: str, entity_id: str) -> Entry | None: ...

    def add_local(self, entries: list[NewEntry]) -> None: ...

    def revoked(self, entity_type: str, entity_id: str) -> bool: ...


@dataclass(frozen=True)
class Decided:
    transaction: Transaction
    verdict: Verdict
    record: DecisionRecord


def rules_version(config: DetectorConfig) -> str:
    """``<name>-<hash of every setting>``: two daemons with equal versions decide alike."""
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()
    return f"{config.name}-{digest[:10]}"


class Detector:
    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.engine = RuleEngine(config)
        self.version = rules_version(config)

    def decide_batch(self, transactions: list[Transaction], facts: BatchFacts | None,
                     blocklist: BlocklistView, now_ms: int,
                     produced_ms: list[int] | None = None
                     ) -> tuple[list[Decided], list[NewEntry]]:
        """Decide each transaction; return the decisions and the entities newly flagged.
        ``produced_ms[i]`` (optional) is when ``transactions[i]`` entered Kafka."""
        config = self.config
        flags: dict[tuple[str, str], NewEntry] = {}
        decided = []
        self.engine.clock.observe(tx.event_ms for tx in transactions)
        for i, tx in enumerate(transactions):
            blocked = _as_of(blocklist, tx.event_ms)
            reasons = self.engine.evaluate(tx, blocked)
            if facts is not None and config.graph.enabled:
                reasons += graph_checks.reasons_for(tx, facts, config.graph)
            verdict = decide(reasons, config.decision)
            self.engine.learn(tx, verdict.decision != ALLOW)
            if verdict.decision != ALLOW:
                new = self._flags(tx, verdict, blocked, blocklist.revoked)
                if new:
                    blocklist.add_local(new)
                    flags.update((e.key, e) for e in new)
            produced = produced_ms[i] if produced_ms is not None else None
            decided.append(Decided(tx, verdict, self.record(tx, verdict, now_ms, produced)))
        return decided, list(flags.values())

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
               produced_ms: int | None = None) -> DecisionRecord:
        return DecisionRecord(
            transaction_id=tx.transaction_id, decision=verdict.decision, score=verdict.score,
            reasons=[ReasonRecord(r.code, r.detector, r.detail) for r in verdict.reasons],
            card_id=tx.card_id, user_id=tx.user_id, site_id=tx.site_id,
            device_id=tx.device_id, ip_address=tx.ip_address, amount_minor=tx.amount_minor,
            currency=tx.currency, country=tx.country, event_time=iso_from_ms(tx.event_ms),
            event_ms=tx.event_ms, decided_ms=now_ms, rules_version=self.version,
            produced_ms=produced_ms,
            evidence=None if verdict.decision == ALLOW else
            f"{EXPLAIN} -p transaction_id={shlex.quote(tx.transaction_id)}")


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
    r = d.record
    return FlaggedTransaction(
        transaction_id=r.transaction_id, decision=r.decision, score=r.score,
        reasons=[{"code": x.code, "detector": x.detector, "detail": x.detail} for x in r.reasons],
        card_id=r.card_id, user_id=r.user_id, site_id=r.site_id, device_id=r.device_id,
        amount_minor=r.amount_minor, currency=r.currency, event_ms=r.event_ms,
        decided_ms=r.decided_ms)
