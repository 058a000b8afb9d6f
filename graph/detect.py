"""Neo4j reads and writes of the detectors: per-batch entity checks, the ring sweep's
links and marks, blocklist marks and fraud labels.  Queries come from ``cypher/``.

Per micro-batch the daemon calls :func:`batch_features` once: four queries in
one read transaction, whatever the batch size (never one per transaction), as of
the batch's transactions' times (:mod:`detectors.graph_checks`), once
:func:`projection_progress` says the graph holds everything up to them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import cypher
from detectors.entities import ENTITY_TYPE
from detectors.graph_checks import BatchFacts, CardFacts, DeviceFacts, Members, SiteFacts
from graph.driver import Driver

F = TypeVar("F", bound=Callable[..., Any])
WRITE_CHUNK = 5000  # rows per write transaction of the feedback worker
LABEL_OF = {"card": "cards", "user": "users", "device": "devices", "ip": "ips", "site": "sites"}


class QueryClock:
    """Calls and wall seconds of each function here, in this process (the loop and the
    feedback worker both call them): where a daemon's share of Neo4j's time goes.
    ``observe(name, seconds)``, when set, hears of every call (a Prometheus counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.observe: Callable[[str, float], None] | None = None

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if self.observe is not None:
            self.observe(name, seconds)

    def snapshot(self) -> dict[str, tuple[int, float]]:
        with self._lock:
            return {name: (self.calls[name], self.seconds[name]) for name in self.calls}

    @staticmethod
    def since(before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]
              ) -> dict[str, tuple[int, float]]:
        """What was called between two snapshots."""
        return {name: (calls - before.get(name, (0, 0.0))[0],
                       seconds - before.get(name, (0, 0.0))[1])
                for name, (calls, seconds) in after.items()
                if calls > before.get(name, (0, 0.0))[0]}


CLOCK = QueryClock()


def _timed(function: F) -> F:
    """Count the function's calls and wall time (failed ones too) in :data:`CLOCK`."""
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            CLOCK.add(function.__name__, time.perf_counter() - started)
    return timed  # type: ignore[return-value]


NEVER = 2**31  # a member limit no entity reaches: the rule is off


@dataclass(frozen=True)
class Thresholds:
    """Below these an entity has nothing to report and is not sent back (rows cost)."""

    device_cards: int  # the graph's shared-device check: more than these
    device_users: int
    site_frauds: int
    site_window_ms: int
    min_risk: float = 0.5  # GNN risk score worth a reason (graph.gnn_threshold)
    #: the shared-device and shared-IP rules: more than these with the transaction's own
    #: card or user, so the graph's members matter from this many on
    rule_device_cards: int = NEVER
    rule_device_users: int = NEVER
    rule_ip_users: int = NEVER


@_timed
def batch_features(driver: Driver, cards: list[str], devices: list[str], sites: list[str],
                   known_ms: int, oldest_ms: int, thresholds: Thresholds,
                   ips: list[str] | None = None, database: str = "neo4j") -> BatchFacts:
    """Facts for the entities worth reporting as of ``known_ms`` (the newest time any
    transaction of the batch may see; each is then checked as of its own time);
    ``oldest_ms``: the oldest such time in the batch.  An entity missing from the
    result has nothing to report.  Read the graph only once it is complete up to
    ``known_ms`` (:func:`projection_progress`).  Four queries, the IPs' only when the
    shared-IP rule is on."""
    t = thresholds

    def work(tx: Any) -> BatchFacts:
        found = tx.run(cypher.load("detect_devices"), ids=devices, known_ms=known_ms,
                       min_cards=min(t.device_cards + 1, t.rule_device_cards),
                       min_users=min(t.device_users + 1, t.rule_device_users),
                       min_risk=t.min_risk).data()
        members = {r["id"]: Members(_pairs(r["cards"]), _pairs(r["users"])) for r in found}
        ip_members = {} if not ips or t.rule_ip_users >= NEVER else {
            r["id"]: Members(users=_pairs(r["users"]))
            for r in tx.run(cypher.load("detect_ips"), ids=ips, known_ms=known_ms,
                            min_users=t.rule_ip_users)}
        return BatchFacts(
            devices={r["id"]: DeviceFacts(tuple(ms for _, ms in members[r["id"]].cards),
                                          tuple(ms for _, ms in members[r["id"]].users),
                                          r["risk_score"], r["risk_scored_ms"])
                     for r in found  # what the graph's check reports
                     if len(r["cards"]) > t.device_cards or len(r["users"]) > t.device_users
                     or r["risk_score"] is not None},
            cards={r["id"]: CardFacts(tuple((h["id"], h["ms"]) for h in r["holders"]),
                                      r["near_fraud"], r["near_fraud_ms"], r["risk_score"],
                                      r["risk_scored_ms"])
                   for r in tx.run(cypher.load("detect_cards"), ids=cards, known_ms=known_ms,
                                   min_risk=thresholds.min_risk)},
            sites={r["id"]: SiteFacts(tuple((f[0], f[1]) for f in r["frauds"]))
                   for r in tx.run(cypher.load("detect_sites"), ids=sites, known_ms=known_ms,
                                   from_ms=oldest_ms - thresholds.site_window_ms,
                                   min_frauds=thresholds.site_frauds)},
            device_members=members, ip_members=ip_members)

    with driver.session(database=database) as session:
        result: BatchFacts = session.execute_read(work)
        return result


def _pairs(rows: list[list[Any]]) -> tuple[tuple[str, int], ...]:
    """(member id, first seen) rows, oldest first."""
    return tuple(sorted(((str(m), int(ms)) for m, ms in rows), key=lambda p: (p[1], p[0])))


@dataclass(frozen=True)
class PartitionProgress:
    """How far the graph holds one partition of the transactions topic."""

    offset: int  # the highest offset projected (-1: none)
    event_ms: int | None  # the newest event time projected
    #: FRAUDGRAPH_GRAPH_DETAIL of the group furthest on (None: not recorded)
    detail: str | None = None


@_timed
def projection_progress(driver: Driver, topic: str,
                        database: str = "neo4j") -> dict[int, PartitionProgress]:
    """Per partition of ``topic``, the furthest any projection group has written."""
    records, _, _ = driver.execute_query(cypher.load("projection_progress"), topic=topic,
                                         database_=database)
    return {r["partition"]: PartitionProgress(r["offset"], r["event_ms"], r["detail"])
            for r in records}


@_timed
def ring_links(driver: Driver, known_ms: int, devices: bool,
               database: str = "neo4j") -> list[tuple[str, str, list[tuple[str, int]]]]:
    """(via, through, [(user, first seen)]) as of ``known_ms``: cards held by several users
    and, when ``devices``, devices used by several users."""
    records, _, _ = driver.execute_query(cypher.load("ring_links"), known_ms=known_ms,
                                         devices=devices, database_=database)
    return [(r["via"], r["through"], [(u[0], u[1]) for u in r["users"]]) for r in records]


@_timed
def save_rings(driver: Driver, members: list[dict[str, Any]],
               database: str = "neo4j") -> tuple[int, int]:
    records, _, _ = driver.execute_query(cypher.load("ring_save"), members=members,
                                         database_=database)
    return records[0]["marked"], records[0]["cleared"]


@_timed
def mark_blocked(driver: Driver, entries: list[tuple[str, str, str, str]],
                 database: str = "neo4j") -> None:
    """``entries``: (entity_type, entity_id, reason, source); sets ``blocked`` on the nodes."""
    driver.execute_query(cypher.load("mark_blocked"), _by_label(
        (t, {"id": i, "reason": reason, "source": source}) for t, i, reason, source in entries),
        database_=database)


@_timed
def unmark_blocked(driver: Driver, entries: list[tuple[str, str]],
                   database: str = "neo4j") -> int:
    """``entries``: (entity_type, entity_id) no longer blocklisted; returns how many nodes
    lost their ``blocked`` mark."""
    records, _, _ = driver.execute_query(cypher.load("unmark_blocked"), _by_label(
        (t, {"id": i}) for t, i in entries), database_=database)
    return int(records[0]["unmarked"])


@_timed
def blocked_nodes(driver: Driver, database: str = "neo4j") -> list[tuple[str, str]]:
    """(entity_type, entity_id) of every node carrying the ``blocked`` mark."""
    records, _, _ = driver.execute_query(cypher.load("blocked_nodes"), database_=database)
    return [(ENTITY_TYPE[r["label"]], r["id"]) for r in records if r["label"] in ENTITY_TYPE]


def _by_label(rows: Iterable[tuple[str, dict[str, str]]]) -> dict[str, list[dict[str, str]]]:
    """(entity_type, row) pairs as the per-label parameter lists of the mark queries."""
    grouped: dict[str, list[dict[str, str]]] = {name: [] for name in LABEL_OF.values()}
    for entity_type, row in rows:
        grouped[LABEL_OF[entity_type]].append(row)
    return grouped


@_timed
def label_fraud(driver: Driver, rows: list[dict[str, Any]],
                database: str = "neo4j") -> list[dict[str, Any]]:
    """Apply new fraud labels; returns the resolved entities of those applied now."""
    records, _, _ = driver.execute_query(cypher.load("label_fraud"), rows=rows,
                                         database_=database)
    return [dict(r) for r in records]


@_timed
def resolve_transactions(driver: Driver, ids: list[str],
                         database: str = "neo4j") -> list[dict[str, Any]]:
    """Card, user, site, device and event time of the transactions the graph holds."""
    records, _, _ = driver.execute_query(cypher.load("resolve_transactions"), ids=ids,
                                         database_=database)
    return [dict(r) for r in records]


@_timed
def record_flagged(driver: Driver, rows: list[dict[str, Any]],
                   database: str = "neo4j") -> set[str]:
    """Write flagged transactions' detail nodes with their decisions
    (``FRAUDGRAPH_GRAPH_DETAIL=flagged``), at most ``WRITE_CHUNK`` per transaction;
    returns the ids written (those whose card and site the graph holds)."""
    return _chunked(driver, "record_flagged", rows, database)


@_timed
def set_decisions(driver: Driver, rows: list[dict[str, Any]],
                  database: str = "neo4j") -> set[str]:
    """Write decisions onto their Transaction nodes, at most ``WRITE_CHUNK`` per
    transaction (bounded Neo4j heap however many waited); returns the ids found."""
    return _chunked(driver, "set_decisions", rows, database)


def _chunked(driver: Driver, query: str, rows: list[dict[str, Any]],
             database: str) -> set[str]:
    """Run ``query`` on ``rows``, ``WRITE_CHUNK`` per transaction; the ids it returns."""
    found: set[str] = set()
    for start in range(0, len(rows), WRITE_CHUNK):
        records, _, _ = driver.execute_query(cypher.load(query),
                                             rows=rows[start:start + WRITE_CHUNK],
                                             database_=database)
        found.update(r["id"] for r in records)
    return found
