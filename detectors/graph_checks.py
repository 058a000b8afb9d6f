"""Cypher detectors as pure functions: graph facts of a batch → reasons per transaction.

The facts come from :func:`graph.detect.batch_features` (three queries per
batch); the graph is written by the projection, so it may lag the stream by a
batch or two: the streaming rules cover the newest activity.
"""

from __future__ import annotations

from typing import Any

from detectors.config import GraphConfig
from detectors.decision import CYPHER, GNN, Reason
from ingest.transaction import Transaction


def reasons_for(tx: Transaction, devices: dict[str, dict[str, Any]],
                cards: dict[str, dict[str, Any]], sites: dict[str, dict[str, Any]],
                config: GraphConfig) -> list[Reason]:
    found: list[Reason] = []
    device = devices.get(tx.device_id) if tx.device_id else None
    card = cards.get(tx.card_id)
    site = sites.get(tx.site_id)
    if device is not None:
        if device["cards"] > config.shared_device_cards or \
                device["users"] > config.shared_device_users:
            found.append(Reason("shared_device", CYPHER,
                                f"device linked to {device['cards']} cards and "
                                f"{device['users']} users in the graph",
                                config.shared_device_weight, ("device",)))
        found.extend(_gnn("device", device, config))
    if card is not None:
        if card["holders"] > 1:
            found.append(Reason("shared_card", CYPHER, f"card held by {card['holders']} users",
                                config.shared_card_weight))
        if card["ring_size"]:
            found.append(Reason("fraud_ring", CYPHER,
                                f"holder in ring {card['ring_id']} of {card['ring_size']} users",
                                config.ring_weight))
        if card["near_fraud"]:
            found.append(Reason("near_fraud", CYPHER,
                                f"within 2 hops of {card['near_fraud']} (confirmed or blocked)",
                                config.near_fraud_weight))
        found.extend(_gnn("card", card, config))
    if site is not None:
        last = site["last_fraud_ms"]
        if site["fraud_count"] >= config.compromised_site_min_frauds and last is not None and \
                0 <= tx.event_ms - last <= config.compromised_site_window_ms:
            found.append(Reason("compromised_site", CYPHER,
                                f"{site['fraud_count']} confirmed frauds at the site, the latest "
                                f"{(tx.event_ms - last) // 3_600_000} h before",
                                config.compromised_site_weight))
    return found


def _gnn(entity_type: str, facts: dict[str, Any], config: GraphConfig) -> list[Reason]:
    score = facts.get("risk_score")
    if not config.gnn_enabled or score is None or score < config.gnn_threshold:
        return []
    return [Reason(f"gnn_{entity_type}", GNN, f"{entity_type} GNN risk {score:.2f}",
                   config.gnn_weight * float(score))]
