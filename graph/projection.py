"""Projection of transactions into the Neo4j graph: a pure batch plan and one writer.

The graph (SPEC §4):

* nodes ``User``, ``Card``, ``Site`` (category, country), ``Device``, ``IP``;
* aggregate relationships, one per entity pair, each with ``count``,
  ``amount_minor_sum``, ``first_seen_ms``, ``last_seen_ms``, ``fraud_count``:
  ``(User)-[:HOLDS]->(Card)``, ``(Card)-[:PAID_AT]->(Site)``,
  ``(Card)-[:USED_ON]->(Device)``, ``(User)-[:USES]->(Device)``,
  ``(User)-[:FROM_IP]->(IP)``;
* transaction detail for the retention window:
  ``(Card)-[:MADE]->(Transaction)-[:AT]->(Site)``, ``(Transaction)-[:ON]->(Device)``:
  for every transaction (``FRAUDGRAPH_GRAPH_DETAIL=all``), or only for those the
  daemon reviews or blocks (``flagged``: the daemon writes them with the decision,
  ``graph.detect.record_flagged``; the projection writes no detail, about half its
  Neo4j cost).

Idempotency, because delivery is at-least-once: every batch is written in one
Neo4j transaction that (1) drops transaction ids already in the graph, (2) MERGEs
entities and adds the batch's aggregates, (3) creates the detail nodes and (4)
records the highest offset per partition (``ProjectionCursor``).  Replays (a
restart, a batch redelivered to another projector of the group after a rebalance,
a second group re-reading the topic, a message produced twice) are thus dropped by
their ``transaction_id`` while their detail is retained.  With ``flagged`` detail
there is no detail to ask, so the transaction starts instead by locking the batch's
partitions' cursors and dropping the messages at or below the highest offset any
group has projected (read inside the transaction that would write them: a second
writer of the partition waits, then reads what the first wrote), and a message
produced twice under two offsets is dropped while it is among the writer's
:data:`RECENT_IDS` latest ids.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cypher
from detectors.blocklist import FlaggedTransaction
from graph.driver import Driver, TransientError
from ingest.transaction import Transaction

#: relationship query name -> (source field, target field) of a transaction
RELATIONSHIPS: dict[str, tuple[str, str]] = {
    "holds": ("user_id", "card_id"),
    "paid_at": ("card_id", "site_id"),
    "used_on": ("card_id", "device_id"),
    "uses": ("user_id", "device_id"),
    "from_ip": ("user_id", "ip_address"),
}
#: without detail in the graph, the transaction ids a writer remembers to drop a message
#: published twice (under two offsets); about 100 bytes each
RECENT_IDS = 500_000
ENTITY_FIELDS = {"users": "user_id", "cards": "card_id", "devices": "device_id",
                 "ips": "ip_address", "sites": "site_id"}


@dataclass
class BatchPlan:
    """What one batch writes: new entities, aggregated pair rows, detail rows."""

    entities: dict[str, list[Any]] = field(default_factory=dict)
    relationships: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    #: the ids of the transactions the batch projects (detail or not)
    projected: list[str] = field(default_factory=list)

    @property
    def relationship_rows(self) -> int:
        return sum(len(rows) for rows in self.relationships.values())


def detail_row(tx: Transaction) -> dict[str, Any]:
    """A transaction's detail node, as ``project_transactions`` and ``record_flagged``
    write it."""
    return {"id": tx.transaction_id, "card_id": tx.card_id, "site_id": tx.site_id,
            "device_id": tx.device_id, "user_id": tx.user_id, "event_ms": tx.event_ms,
            "amount_minor": tx.amount_minor, "currency": tx.currency, "country": tx.country,
            "ip_address": tx.ip_address, "merchant_category": tx.merchant_category,
            "card_present": tx.card_present}


def decision_row(f: FlaggedTransaction) -> dict[str, Any]:
    """A flagged transaction's detail node with its decision, as ``record_flagged``
    writes it (``set_decisions`` reads the decision alone): :func:`detail_row`'s keys,
    from the row PostgreSQL keeps, so a start can write what a stopped daemon left."""
    return {"id": f.transaction_id, "card_id": f.card_id, "site_id": f.site_id,
            "device_id": f.device_id, "user_id": f.user_id, "event_ms": f.event_ms,
            "amount_minor": f.amount_minor, "currency": f.currency, "country": f.country,
            "ip_address": f.ip_address, "merchant_category": f.merchant_category,
            "card_present": f.card_present, "decision": f.decision, "score": f.score,
            "reasons": [r["code"] for r in f.reasons]}


def plan_batch(transactions: Iterable[Transaction], known: dict[str, set[str]],
               with_detail: bool = True) -> BatchPlan:
    """Collapse a batch into entity, pair and detail rows (pure; ``known`` is not changed).

    ``transactions`` must be new and unique by id.  Entities in ``known`` (the
    writer's cache of ids already in the graph) are not MERGEd again.  Without
    detail (``FRAUDGRAPH_GRAPH_DETAIL=flagged``) the plan has no detail rows.
    """
    pairs: dict[str, dict[tuple[str, str], list[int]]] = {name: {} for name in RELATIONSHIPS}
    new: dict[str, dict[str, Any]] = {name: {} for name in ENTITY_FIELDS}
    detail, projected = [], []
    for tx in transactions:
        for name, attr in ENTITY_FIELDS.items():
            value = getattr(tx, attr)
            if value is not None and value not in known[name] and value not in new[name]:
                new[name][value] = ({"id": value, "category": tx.merchant_category,
                                     "country": tx.country} if name == "sites" else value)
        for name, (a_attr, b_attr) in RELATIONSHIPS.items():
            b = getattr(tx, b_attr)
            if b is None:
                continue
            key = (getattr(tx, a_attr), b)
            agg = pairs[name].get(key)
            if agg is None:
                pairs[name][key] = [1, tx.amount_minor, tx.event_ms, tx.event_ms]
            else:
                agg[0] += 1
                agg[1] += tx.amount_minor
                if tx.event_ms < agg[2]:
                    agg[2] = tx.event_ms
                if tx.event_ms > agg[3]:
                    agg[3] = tx.event_ms
        projected.append(tx.transaction_id)
        if with_detail:
            detail.append(detail_row(tx))
    return BatchPlan(
        entities={name: list(values.values()) for name, values in new.items()},
        relationships={name: [{"a": a, "b": b, "count": v[0], "amount_minor": v[1],
                               "first_ms": v[2], "last_ms": v[3]} for (a, b), v in rows.items()]
                       for name, rows in pairs.items()},
        transactions=detail, projected=projected)


@dataclass(frozen=True)
class Cursor:
    """How far one projection group has written one partition: its highest offset and
    the newest event time among that partition's transactions (None: none yet)."""

    id: str  # "<group>:<topic>:<partition>"
    topic: str
    partition: int
    offset: int
    event_ms: int | None


@dataclass(frozen=True)
class ProjectResult:
    projected: int
    duplicates: int
    relationship_rows: int
    #: wall seconds of each part of the batch's Neo4j transaction (:data:`PARTS`)
    seconds: dict[str, float] = field(default_factory=dict)


#: the parts of a batch's write, in order: the known-ids check, the plan (in Python),
#: the entities, each aggregate relationship, the detail nodes, the cursors, and the
#: rest: the commit, with the session's begin and a retried attempt's time, if any
PARTS = ("known", "plan", "entities", *(f"rel_{name}" for name in RELATIONSHIPS), "detail",
         "cursors", "commit")
#: the parts a benchmark may leave out (``GraphWriter``'s ``leave_out``)
OPTIONAL_PARTS = (*(f"rel_{name}" for name in RELATIONSHIPS), "detail")


class GraphWriter:
    """The one serialised writer of a projection process (relationship writes lock both ends).

    Keeps an in-process cache of entity ids known to exist; the cache is only
    extended after a transaction commits, and is cleared when it grows past
    ``cache_limit`` ids.
    """

    def __init__(self, driver: Driver, database: str = "neo4j",
                 cache_limit: int = 2_000_000, leave_out: Iterable[str] = (),
                 detail: bool = True) -> None:
        """``detail``: write a Transaction node per transaction (False: the daemon
        writes the flagged ones, ``FRAUDGRAPH_GRAPH_DETAIL=flagged``).  ``leave_out``:
        parts of the write (:data:`PARTS`: ``detail``, ``rel_holds``, …) not written at
        all, for ``fraudgraph bench-projection --leave-out`` only: it measures what a
        part costs, and the graph it leaves is incomplete."""
        self.driver = driver
        self.database = database
        self.cache_limit = cache_limit
        self.detail = detail
        #: without detail: ids projected lately, oldest first
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.leave_out = frozenset(leave_out)
        unknown = self.leave_out - set(OPTIONAL_PARTS)
        if unknown:
            raise ValueError(f"only {', '.join(OPTIONAL_PARTS)} can be left out, "
                             f"not {', '.join(sorted(unknown))}")
        self.known: dict[str, set[str]] = {name: set() for name in ENTITY_FIELDS}

    def apply_schema(self) -> int:
        """Create constraints and indexes if missing; return the number of statements."""
        statements = cypher.statements("schema")
        with self.driver.session(database=self.database) as session:
            for statement in statements:
                for attempt in range(10):  # two processes starting together may deadlock
                    try:
                        session.run(statement).consume()
                        break
                    except TransientError:
                        if attempt == 9:
                            raise
                        time.sleep(0.2 * (attempt + 1))
        return len(statements)

    def project(self, transactions: list[Transaction], cursors: Sequence[Cursor] = (),
                positions: Sequence[tuple[str, int, int]] | None = None) -> ProjectResult:
        """Write one batch in one transaction (retried by the driver on transient errors),
        with the cursors it advances (so the graph says how far it is complete).
        ``positions[i]``: topic, partition and offset of ``transactions[i]``; without
        detail a transaction at or below its partition's projected offset is dropped
        (with detail, one whose id the graph holds)."""
        seconds: dict[str, float] = {}

        def timed(part: str, tx: Any, query: str, **params: Any) -> list[Any]:
            if part in self.leave_out:
                return []
            started = time.perf_counter()
            records = list(tx.run(cypher.load(query), **params))
            seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - started
            return records

        def work(tx: Any) -> tuple[BatchPlan, int]:
            seconds.clear()  # a retried transaction: only the attempt that commits counts
            unique = self._unprojected(transactions, cursors, positions,
                                       lambda rows: timed("cursors", tx, "project_cursors_lock",
                                                          cursors=rows))
            if self.detail:
                known_ids = {r["id"] for r in timed("known", tx, "project_known_transactions",
                                                    ids=[t.transaction_id for t in unique])}
            else:  # the daemon's flagged nodes are no sign of projection: ask memory
                known_ids = {t.transaction_id for t in unique if t.transaction_id in self.recent}
            planning = time.perf_counter()
            fresh = [t for t in unique if t.transaction_id not in known_ids]
            plan = plan_batch(fresh, self.known, self.detail)
            seconds["plan"] = time.perf_counter() - planning
            if any(plan.entities.values()):
                timed("entities", tx, "project_entities", **plan.entities)
            for name, rows in plan.relationships.items():
                if rows:
                    timed(f"rel_{name}", tx, f"project_rel_{name}", rows=rows)
            if plan.transactions:
                timed("detail", tx, "project_transactions", txs=plan.transactions)
            if cursors:
                timed("cursors", tx, "project_cursors_save",
                      cursors=[{**dataclasses.asdict(c),
                                "detail": "all" if self.detail else "flagged"}
                               for c in cursors])
            return plan, len(transactions) - len(fresh)

        started = time.perf_counter()
        with self.driver.session(database=self.database) as session:
            plan, duplicates = session.execute_write(work)
        # the rest of the wall time: the commit (and a retried attempt's, if any)
        seconds["commit"] = max(0.0, time.perf_counter() - started - sum(seconds.values()))
        self._remember(plan)
        written = sum(len(rows) for name, rows in plan.relationships.items()
                      if f"rel_{name}" not in self.leave_out)
        return ProjectResult(len(plan.projected), duplicates, written, dict(seconds))

    def _unprojected(self, transactions: list[Transaction], cursors: Sequence[Cursor],
                     positions: Sequence[tuple[str, int, int]] | None,
                     lock: Callable[[list[dict[str, Any]]], list[Any]]) -> list[Transaction]:
        """The batch's transactions, unique by id; without detail, less those at or below
        their partition's projected offset (read by ``lock`` inside the write transaction,
        which then holds the cursors' locks).  With detail the known-ids check inside the
        same transaction drops them, whoever wrote them."""
        if positions is not None and cursors and not self.detail:
            done = {(r["topic"], r["partition"]): r["offset"] for r in lock(
                [{"id": c.id, "topic": c.topic, "partition": c.partition} for c in cursors])}
            transactions = [t for t, (topic, partition, offset)
                            in zip(transactions, positions, strict=True)
                            if offset > done.get((topic, partition), -1)]
        return list({t.transaction_id: t for t in transactions}.values())

    def _remember(self, plan: BatchPlan) -> None:
        if not self.detail:
            self.recent.update(dict.fromkeys(plan.projected))
            for _ in range(len(self.recent) - RECENT_IDS):
                self.recent.popitem(last=False)
        if sum(len(ids) for ids in self.known.values()) > self.cache_limit:
            for ids in self.known.values():
                ids.clear()
        for name, values in plan.entities.items():
            self.known[name].update(v["id"] if isinstance(v, dict) else v for v in values)

    def prune(self, retention_ms: int, now_ms: int, limit: int = 20_000) -> int:
        """Delete transaction detail older than ``retention_ms`` before ``now_ms`` (event
        time, from a clock that one outlier cannot move: ``ingest.event_clock``; never
        the newest event in the graph, which is untrusted data)."""
        cutoff = now_ms - retention_ms
        deleted = 0
        while True:
            records, _, _ = self.driver.execute_query(
                cypher.load("prune_transactions"), cutoff_ms=cutoff, limit=limit,
                database_=self.database)
            deleted += records[0]["deleted"]
            if records[0]["deleted"] < limit:
                return deleted


def clear_graph(driver: Driver, database: str = "neo4j", limit: int = 20_000) -> int:
    """Delete everything, in bounded transactions (relationships first); returns nodes deleted.

    For benchmarks and tests on a dedicated database: there is no undo.
    """
    deleted_nodes = 0
    for name in ("clear_relationships", "clear_nodes"):
        while True:
            records, _, _ = driver.execute_query(cypher.load(name), limit=limit,
                                                 database_=database)
            deleted = records[0]["deleted"]
            if name == "clear_nodes":
                deleted_nodes += deleted
            if deleted < limit:
                break
    return deleted_nodes
