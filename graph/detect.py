"""Neo4j reads and writes of the detectors: per-batch entity checks, the ring sweep's
links and marks, blocklist marks and fraud labels.  Queries come from ``cypher/``.

Per micro-batch the daemon calls :func:`batch_features` once: three queries in
one read transaction, whatever the batch size (never one per transaction).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cypher
from graph.driver import Driver

WRITE_CHUNK = 5000  # rows per write transaction of the feedback worker
LABEL_OF = {"card": "cards", "user": "users", "device": "devices", "ip": "ips", "site": "sites"}


@dataclass(frozen=True)
class BatchFeatures:
    """Graph facts about the entities of one batch, keyed by entity id."""

    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    """Below these an entity has nothing to report and is not sent back (rows cost)."""

    device_cards: int
    device_users: int
    site_frauds: int
    min_risk: float = 0.5  # GNN risk score worth a reason (graph.gnn_threshold)


def batch_features(driver: Driver, cards: list[str], devices: list[str], sites: list[str],
                   thresholds: Thresholds, database: str = "neo4j") -> BatchFeatures:
    """Facts for the entities worth reporting; an entity missing from the result has none."""
    def work(tx: Any) -> BatchFeatures:
        return BatchFeatures(
            devices={r["id"]: dict(r) for r in tx.run(
                cypher.load("detect_devices"), ids=devices, max_cards=thresholds.device_cards,
                max_users=thresholds.device_users, min_risk=thresholds.min_risk)},
            cards={r["id"]: dict(r) for r in tx.run(cypher.load("detect_cards"), ids=cards,
                                                     min_risk=thresholds.min_risk)},
            sites={r["id"]: dict(r) for r in tx.run(cypher.load("detect_sites"), ids=sites,
                                                     min_frauds=thresholds.site_frauds,
                                                     min_risk=thresholds.min_risk)})

    with driver.session(database=database) as session:
        result: BatchFeatures = session.execute_read(work)
        return result


def ring_links(driver: Driver, max_device_users: int,
               database: str = "neo4j") -> list[tuple[str, str, list[str]]]:
    records, _, _ = driver.execute_query(cypher.load("ring_links"),
                                         max_device_users=max_device_users, database_=database)
    return [(r["via"], r["through"], list(r["users"])) for r in records]


def save_rings(driver: Driver, members: list[dict[str, Any]],
               database: str = "neo4j") -> tuple[int, int]:
    records, _, _ = driver.execute_query(cypher.load("ring_save"), members=members,
                                         database_=database)
    return records[0]["marked"], records[0]["cleared"]


def mark_blocked(driver: Driver, entries: list[tuple[str, str, str, str]],
                 database: str = "neo4j") -> None:
    """``entries``: (entity_type, entity_id, reason, source); sets ``blocked`` on the nodes."""
    driver.execute_query(cypher.load("mark_blocked"), _by_label(
        (t, {"id": i, "reason": reason, "source": source}) for t, i, reason, source in entries),
        database_=database)


def unmark_blocked(driver: Driver, entries: list[tuple[str, str]],
                   database: str = "neo4j") -> int:
    """``entries``: (entity_type, entity_id) no longer blocklisted; returns how many nodes
    lost their ``blocked`` mark."""
    records, _, _ = driver.execute_query(cypher.load("unmark_blocked"), _by_label(
        (t, {"id": i}) for t, i in entries), database_=database)
    return int(records[0]["unmarked"])


def _by_label(rows: Iterable[tuple[str, dict[str, str]]]) -> dict[str, list[dict[str, str]]]:
    """(entity_type, row) pairs as the per-label parameter lists of the mark queries."""
    grouped: dict[str, list[dict[str, str]]] = {name: [] for name in LABEL_OF.values()}
    for entity_type, row in rows:
        grouped[LABEL_OF[entity_type]].append(row)
    return grouped


def label_fraud(driver: Driver, rows: list[dict[str, Any]],
                database: str = "neo4j") -> list[dict[str, Any]]:
    """Apply new fraud labels; returns the resolved entities of those applied now."""
    records, _, _ = driver.execute_query(cypher.load("label_fraud"), rows=rows,
                                         database_=database)
    return [dict(r) for r in records]


def set_decisions(driver: Driver, rows: list[dict[str, Any]],
                  database: str = "neo4j") -> set[str]:
    """Write decisions onto their Transaction nodes, at most ``WRITE_CHUNK`` per
    transaction (bounded Neo4j heap however many waited); returns the ids found."""
    found: set[str] = set()
    for start in range(0, len(rows), WRITE_CHUNK):
        records, _, _ = driver.execute_query(cypher.load("set_decisions"),
                                             rows=rows[start:start + WRITE_CHUNK],
                                             database_=database)
        found.update(r["id"] for r in records)
    return found
