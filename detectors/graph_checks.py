"""Cypher detectors as pure functions: graph facts of a batch → reasons per transaction.

Every check is made **as of the transaction's time** ``t``: it sees what the graph
knew at ``t - as_of_lag`` (``graph.as_of_lag``), never later.  The facts carry the
times that make this possible: when each card or user was first seen on a device,
when each holder was first seen on a card, when a confirmed fraud became known
near a card (its label's *report* time, and when the path to it appeared), the
report and event times of the confirmed frauds at a site, and the event time a
GNN score is as of.  The facts come from :func:`graph.detect.batch_features` (four
queries per batch, read only once the graph holds everything up to the batch's
newest ``t - as_of_lag``), so the same transaction gets the same reasons whether
the projection ran alongside or had finished the whole stream.

Ring membership comes from the ring sweep (:mod:`detectors.rings`) as of the last
sweep boundary at or before ``t - as_of_lag``, for the same reason.

The streaming rules that count who shares a device or an IP (``shared_device``,
``shared_ip``) read their members here too when the graph is on
(:func:`device_members`, :func:`ip_users`): the graph's members as of ``t -
as_of_lag`` plus the transaction's own card and user.  In-process sets would hold
only the cards of the partitions one daemon owns, so two daemons of a group would
count differently from one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

from detectors.config import GraphConfig
from detectors.decision import CYPHER, GNN, Reason
from ingest.transaction import Transaction


@dataclass(frozen=True)
class DeviceFacts:
    """``card_ms`` / ``user_ms``: when each card / user was first seen on the device (sorted)."""

    card_ms: tuple[int, ...] = ()
    user_ms: tuple[int, ...] = ()
    risk_score: float | None = None
    risk_scored_ms: int | None = None


@dataclass(frozen=True)
class CardFacts:
    """``holders``: (user id, first seen holding the card); ``near_fraud_ms``: the earliest
    time a confirmed fraud (``near_fraud``) was known within 2 hops."""

    holders: tuple[tuple[str, int], ...] = ()
    near_fraud: str | None = None
    near_fraud_ms: int | None = None
    risk_score: float | None = None
    risk_scored_ms: int | None = None


@dataclass(frozen=True)
class SiteFacts:
    """``frauds``: (report time, event time) of the confirmed frauds at the site."""

    frauds: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Members:
    """Who was seen on a device or an IP: (card id, first seen there) and (user id, first
    seen there), as of the batch's newest known time."""

    cards: tuple[tuple[str, int], ...] = ()
    users: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class BatchFacts:
    """Graph facts about the entities of one batch, keyed by entity id; an entity
    missing has nothing to report."""

    devices: Mapping[str, DeviceFacts] = field(default_factory=dict)
    cards: Mapping[str, CardFacts] = field(default_factory=dict)
    sites: Mapping[str, SiteFacts] = field(default_factory=dict)
    #: ring members among the holders -> the first sweep boundary that shows them in a
    #: ring: a transaction whose known time reaches it sees the ring
    ring_visible_ms: Mapping[str, int] = field(default_factory=dict)
    #: the members of the batch's devices and IPs that may reach a shared-device or
    #: shared-IP rule's limit (an entity missing has too few to matter)
    device_members: Mapping[str, Members] = field(default_factory=dict)
    ip_members: Mapping[str, Members] = field(default_factory=dict)


def known_ms(tx: Transaction, config: GraphConfig) -> int:
    """The newest event time the graph checks of ``tx`` may see."""
    return tx.event_ms - config.as_of_lag_ms


def device_members(tx: Transaction, facts: BatchFacts, config: GraphConfig) -> tuple[int, int]:
    """Distinct cards and users on ``tx``'s device as of ``known_ms(tx)``, ``tx``'s own
    card and user included."""
    members = facts.device_members.get(tx.device_id) if tx.device_id else None
    if members is None:
        return 1, 1
    at = known_ms(tx, config)
    return (_count(members.cards, at, tx.card_id), _count(members.users, at, tx.user_id))


def ip_users(tx: Transaction, facts: BatchFacts, config: GraphConfig) -> int:
    """Distinct users on ``tx``'s IP address as of ``known_ms(tx)``, ``tx``'s user included."""
    members = facts.ip_members.get(tx.ip_address) if tx.ip_address else None
    return 1 if members is None else _count(members.users, known_ms(tx, config), tx.user_id)


def _count(seen: tuple[tuple[str, int], ...], at: int, own: str) -> int:
    return len({member for member, ms in seen if ms <= at} | {own})


def reasons_for(tx: Transaction, facts: BatchFacts, config: GraphConfig) -> list[Reason]:
    """The graph reasons of ``tx``, from what was known at ``known_ms(tx)``."""
    at = known_ms(tx, config)
    found: list[Reason] = []
    device = facts.devices.get(tx.device_id) if tx.device_id else None
    card = facts.cards.get(tx.card_id)
    site = facts.sites.get(tx.site_id)
    if device is not None:
        cards, users = bisect_right(device.card_ms, at), bisect_right(device.user_ms, at)
        if cards > config.shared_device_cards or users > config.shared_device_users:
            found.append(Reason("shared_device", CYPHER,
                                f"device linked to {cards} cards and {users} users in the graph",
                                config.shared_device_weight, ("device",)))
        found.extend(_gnn("device", device.risk_score, device.risk_scored_ms, at, config))
    if card is not None:
        holders = sorted(user for user, ms in card.holders if ms <= at)
        if len(holders) > 1:
            found.append(Reason("shared_card", CYPHER, f"card held by {len(holders)} users",
                                config.shared_card_weight))
        in_ring = [user for user in sorted({*holders, tx.user_id})
                   if facts.ring_visible_ms.get(user, at + 1) <= at]
        if in_ring:
            found.append(Reason("fraud_ring", CYPHER,
                                f"{in_ring[0]} in a fraud ring (ring sweep)",
                                config.ring_weight))
        if card.near_fraud is not None and card.near_fraud_ms is not None \
                and card.near_fraud_ms <= at:
            found.append(Reason("near_fraud", CYPHER,
                                f"within 2 hops of {card.near_fraud} (confirmed fraud)",
                                config.near_fraud_weight))
        found.extend(_gnn("card", card.risk_score, card.risk_scored_ms, at, config))
    if site is not None:
        frauds = [event for reported, event in site.frauds
                  if reported <= at and 0 <= tx.event_ms - event
                  <= config.compromised_site_window_ms]
        if len(frauds) >= config.compromised_site_min_frauds:
            found.append(Reason("compromised_site", CYPHER,
                                f"{len(frauds)} confirmed frauds at the site, the latest "
                                f"{(tx.event_ms - max(frauds)) // 3_600_000} h before",
                                config.compromised_site_weight))
    return found


def _gnn(entity_type: str, score: float | None, scored_ms: int | None, at: int,
         config: GraphConfig) -> list[Reason]:
    if not config.gnn_enabled or score is None or score < config.gnn_threshold \
            or scored_ms is None or scored_ms > at:
        return []
    return [Reason(f"gnn_{entity_type}", GNN, f"{entity_type} GNN risk {score:.2f}",
                   config.gnn_weight * float(score))]
