"""Every read query of the library against the real Neo4j on a seeded graph: expected rows,
shared devices and fraud rings equal to networkx on the same transactions.  Starts from
an empty graph (Neo4j Community has one database)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import networkx as nx
import pytest

import cypher
from detectors.rings import find_rings
from fraudgraph import connect
from fraudgraph.settings import Settings
from graph import detect
from graph.driver import Driver
from graph.projection import GraphWriter, clear_graph
from ingest.generator import Generator, GeneratorConfig
from ingest.transaction import Transaction
from tests.integration.cli_helpers import run_cli

CONFIG = GeneratorConfig(seed=7, users=600, sites=80, fraud_rate=0.06,
                         mix={"fraud_ring": 1.0, "device_farm": 1.0, "card_testing": 1.0})


@pytest.fixture(scope="module")
def seeded(stack: Settings) -> Iterator[tuple[Driver, list[Transaction]]]:
    driver = connect.neo4j(stack)
    clear_graph(driver)
    writer = GraphWriter(driver)
    writer.apply_schema()
    txs = [tx for tx, _ in itertools.islice(Generator(CONFIG), 6000)]
    for i in range(0, len(txs), 2000):
        writer.project(txs[i:i + 2000])
    links = detect.ring_links(driver, txs[-1].event_ms, devices=False)
    detect.save_rings(driver, [{"id": u, "ring_id": r.ring_id, "ring_size": len(r.users)}
                               for r in find_rings(links, 3) for u in r.users])
    yield driver, txs
    driver.close()


def run(driver: Driver, name: str, **params: Any) -> list[dict[str, Any]]:
    q = cypher.query(name)
    bound = cypher.bind(q, {k: json.dumps(v) if isinstance(v, list) else str(v)
                            for k, v in params.items()})
    records, _, _ = driver.execute_query(cypher.load(name), bound, routing_="r")
    return [dict(r) for r in records]


def test_shared_devices_equal_networkx(seeded: tuple[Driver, list[Transaction]]) -> None:
    driver, txs = seeded
    cards: dict[str, set[str]] = defaultdict(set)
    for tx in txs:
        if tx.device_id:
            cards[tx.device_id].add(tx.card_id)
    expected = {d: len(c) for d, c in cards.items() if len(c) > 3}
    rows = run(driver, "shared_devices", min_cards=3, limit=10_000)
    assert {r["device"]: r["cards"] for r in rows} == expected
    assert [r["cards"] for r in rows] == sorted((r["cards"] for r in rows), reverse=True)


def test_fraud_rings_equal_networkx_components(seeded: tuple[Driver, list[Transaction]]) -> None:
    driver, txs = seeded
    holders: dict[str, set[str]] = defaultdict(set)
    for tx in txs:
        holders[tx.card_id].add(tx.user_id)
    graph = nx.Graph()
    for users in holders.values():
        if len(users) > 1:
            for a, b in itertools.pairwise(sorted(users)):
                graph.add_edge(a, b)
    expected = sorted((sorted(c) for c in nx.connected_components(graph) if len(c) >= 3),
                      key=lambda members: (-len(members), members[0]))
    rows = run(driver, "fraud_rings", min_size=3)
    assert [r["members"] for r in rows] == expected and expected
    member = expected[0][0]
    ring = run(driver, "ring_of", user_id=member)
    assert [r["member"] for r in ring] == expected[0]


def test_users_sharing_equal_networkx(seeded: tuple[Driver, list[Transaction]]) -> None:
    driver, txs = seeded
    users: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tx in txs:
        if tx.device_id:
            users[("device", tx.device_id)].add(tx.user_id)
        if tx.ip_address:
            users[("ip", tx.ip_address)].add(tx.user_id)
    expected = sorted((a, b, via, shared) for (via, shared), group in users.items()
                      for a, b in itertools.combinations(sorted(group), 2))
    rows = run(driver, "users_sharing", limit=100_000)
    assert [(r["user_a"], r["user_b"], r["via"], r["shared"]) for r in rows] == expected


def test_entity_queries(seeded: tuple[Driver, list[Transaction]]) -> None:
    driver, txs = seeded
    tx = next(t for t in txs if t.device_id)
    card_txs = sorted((t for t in txs if t.card_id == tx.card_id),
                      key=lambda t: (-t.event_ms, t.transaction_id))
    rows = run(driver, "card_transactions", card_id=tx.card_id, limit=5)
    assert [r["transaction_id"] for r in rows] == [t.transaction_id for t in card_txs[:5]]
    assert rows[0]["amount_minor"] == card_txs[0].amount_minor
    near = run(driver, "neighbourhood", label="Card", id=tx.card_id)
    assert {"label": "User", "id": tx.user_id, "hops": 1} in [
        {k: r[k] for k in ("label", "id", "hops")} for r in near]
    path = run(driver, "shortest_path", from_label="User", from_id=tx.user_id,
               to_label="Device", to_id=tx.device_id)
    assert path[0]["hops"] == 1 and path[0]["relationships"] == ["USES"]
    explained = run(driver, "explain_decision", transaction_id=tx.transaction_id)
    assert (explained[0]["card"], explained[0]["site"], explained[0]["device"]) == (
        tx.card_id, tx.site_id, tx.device_id)


def test_fraud_marks_drive_compromised_near_and_top_risk(
        seeded: tuple[Driver, list[Transaction]]) -> None:
    driver, txs = seeded
    site = txs[100].site_id
    at_site = [t for t in txs if t.site_id == site][:3]
    detect.label_fraud(driver, [{"transaction_id": t.transaction_id, "card_id": t.card_id,
                                 "user_id": t.user_id, "site_id": None,
                                 "event_ms": t.event_ms, "reported_ms": t.event_ms + 1,
                                 "source": "test"} for t in at_site])
    rows = run(driver, "compromised_sites", min_frauds=3)
    assert [r["site"] for r in rows] == [site] and rows[0]["fraud_count"] == 3
    near = run(driver, "near_known_fraud", limit=1000)
    assert {"User", "Card"} & {r["label"] for r in near}
    assert all(r["hops"] in (1, 2) for r in near)
    confirmed = {t.card_id for t in at_site}
    suspects = sorted({t.card_id for t in txs} - confirmed)[:2]
    for score, card in ((1.0, at_site[0].card_id), (0.9, suspects[0]), (0.7, suspects[1])):
        driver.execute_query("MATCH (c:Card {id: $id}) SET c.risk_score = $s", id=card, s=score)
    top = run(driver, "top_risk", limit=2)  # confirmed fraud is known already: not a suspect
    assert [(r["id"], r["risk_score"]) for r in top] == [(suspects[0], 0.9), (suspects[1], 0.7)]


def test_query_cli_runs_a_library_query_as_json(stack: Settings,
                                                seeded: tuple[Driver, list[Transaction]]) -> None:
    result = run_cli("query", "run", "shared_devices", "--param", "min_cards=3",
                     "--param", "limit=2", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and set(rows[0]) == {"device", "cards", "users", "blocked",
                                               "risk_score"}
    bad = run_cli("query", "run", "shared_devices", "--param", "min_cards=many")
    assert bad.returncode == 1 and "min_cards must be integer" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = run_cli("query", "run", "shared_device")
    assert "did you mean shared_devices" in unknown.stderr
