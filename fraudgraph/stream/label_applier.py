"""Applying fraud labels: what a confirmed fraud changes.

For the labels :class:`ingest.label_source.LabelSource` hands out: store them in
PostgreSQL (upsert: an older report never overwrites a newer one), mark confirmed
fraud in Neo4j once per transaction (card, user, device with ``fraud_reported_ms``;
the site's fraud count; the FraudLabel node with its report time), hand the
resolved fraud to the feature state (:class:`detectors.features.KnownFraud`), and,
when the preset says so (``labels.blocklist_card``), blocklist the card (source
``label``).  Both count from the report time plus the graph's as-of lag, so the
stream sees a label at the same point whatever the timing.
"""

from __future__ import annotations

from typing import Any

from detectors.blocklist import LabelRow, NewEntry
from detectors.config import DetectorConfig
from detectors.features import KnownFraud
from detectors.pipeline import SINCE
from fraudgraph import metrics
from fraudgraph.blocking import Blocker
from graph import detect
from ingest.label_source import PendingLabel


class LabelApplier:
    def __init__(self, blocker: Blocker, driver: Any, config: DetectorConfig) -> None:
        self.blocker, self.driver, self.config = blocker, driver, config

    def apply(self, labels: list[PendingLabel]) -> tuple[list[NewEntry], list[KnownFraud]]:
        """Store, mark and blocklist; return the blocklist entries (for the loop's cache)
        and the confirmed frauds (for the feature state).  Idempotent: a replay after a
        crash changes nothing and lists the same cards."""
        rows = [_row(p) for p in labels if p.label is not None]
        self.blocker.store.record_labels(rows)
        for row in rows:
            metrics.DETECTOR_LABELS.labels(row.label).inc()
        fraud = [p for p in labels if p.label is not None and p.label.label == "fraud"]
        if not fraud:
            return [], []
        applied = detect.label_fraud(self.driver, [_fraud_row(p) for p in fraud])
        lag = self.config.graph.as_of_lag_ms
        resolved = {a["transaction_id"]: a for a in applied}
        replayed = [p.label.transaction_id for p in fraud
                    if p.label is not None and p.label.transaction_id not in resolved]
        if replayed:  # applied before (a restart, another group): the graph still knows
            resolved.update((r["transaction_id"], r) for r in
                            detect.resolve_transactions(self.driver, replayed))
        known = [_known(p, resolved.get(p.label.transaction_id), lag)
                 for p in fraud if p.label is not None]
        if not self.config.labels.blocklist_card:
            return [], known
        # Blocklist from every label, not only those marked just now: a label replayed
        # after a crash between the marks and the blocklist write still lists its card.
        cards: dict[str, str] = {p.label.transaction_id: p.label.card_id
                                 for p in fraud if p.label is not None and p.label.card_id}
        for a in applied:
            if a["card_id"]:
                cards.setdefault(a["transaction_id"], a["card_id"])
        since = {p.label.transaction_id: p.reported_ms + self.config.graph.as_of_lag_ms
                 for p in labels if p.label is not None}
        entries = [NewEntry("card", card_id, "confirmed_fraud", "label", 1.0,
                            {"transaction_id": transaction_id, SINCE: since[transaction_id]},
                            self.config.labels.ttl_ms // 1000)
                   for transaction_id, card_id in cards.items()]
        self.blocker.block(entries, "labels")
        return entries, known


def _known(p: PendingLabel, resolved: dict[str, Any] | None, lag_ms: int) -> KnownFraud:
    """The fraud as the features see it: its card, user, site and device as the graph
    resolved them (else as the label says), known from its report time plus the lag,
    and never before its own event (a report dated before its transaction, a clock
    error, must not let the transaction see itself)."""
    assert p.label is not None
    event_ms = (resolved or {}).get("event_ms") or p.event_ms or p.reported_ms
    known_ms = max(p.reported_ms, event_ms) + lag_ms
    if resolved is not None:
        return KnownFraud(p.label.transaction_id, known_ms, event_ms, resolved["card_id"],
                          resolved["user_id"], resolved["site_id"], resolved["device_id"])
    return KnownFraud(p.label.transaction_id, known_ms, event_ms, p.label.card_id,
                      p.label.user_id, p.label.site_id, p.label.device_id)


def _row(p: PendingLabel) -> LabelRow:
    assert p.label is not None
    m = p.label
    return LabelRow(m.transaction_id, m.label, m.source, m.reported_at, m.card_id, m.user_id)


def _fraud_row(p: PendingLabel) -> dict[str, Any]:
    assert p.label is not None
    m = p.label
    return {"transaction_id": m.transaction_id, "card_id": m.card_id, "user_id": m.user_id,
            "site_id": m.site_id, "device_id": m.device_id, "event_ms": p.event_ms,
            "reported_ms": p.reported_ms, "source": m.source}
