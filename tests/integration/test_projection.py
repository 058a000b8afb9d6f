"""Projection into Neo4j, checked against an oracle computed independently with networkx.

Neo4j Community has one user database, so these tests start from an empty graph.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from fraudgraph.settings import Settings
from fraudgraph.stream import projector
from graph import detect
from graph import driver as neo4j_driver
from graph.projection import Cursor, GraphWriter, clear_graph
from ingest import kafka
from ingest.generator import Generator, GeneratorConfig
from ingest.publish import Publisher
from ingest.runs import KafkaSink, generate
from ingest.transaction import DecoderConfig, Transaction, encode
from tests.integration.cli_helpers import FRAUDGRAPH
from tests.integration.graph_reads import entity_features, export_networkx, to_arrays

CONFIG = GeneratorConfig(seed=77, users=1500, sites=200, fraud_rate=0.03)
COUNT = 25_000
RELS = {"HOLDS": ("User", "user_id", "Card", "card_id"),
        "PAID_AT": ("Card", "card_id", "Site", "site_id"),
        "USED_ON": ("Card", "card_id", "Device", "device_id"),
        "USES": ("User", "user_id", "Device", "device_id"),
        "FROM_IP": ("User", "user_id", "IP", "ip_address")}


def oracle(transactions: list[Transaction]) -> dict[str, Any]:
    """The expected graph, computed from the input alone (networkx, no project code)."""
    graphs = {rel: nx.DiGraph() for rel in RELS}
    nodes: dict[str, set[str]] = {"User": set(), "Card": set(), "Site": set(), "Device": set(),
                                  "IP": set()}
    for tx in transactions:
        for rel, (a_label, a_attr, b_label, b_attr) in RELS.items():
            a, b = getattr(tx, a_attr), getattr(tx, b_attr)
            nodes[a_label].add(a)
            if b is None:
                continue
            nodes[b_label].add(b)
            g = graphs[rel]
            if g.has_edge(a, b):
                e = g.edges[a, b]
                e["count"] += 1
                e["amount_minor_sum"] += tx.amount_minor
                e["first_seen_ms"] = min(e["first_seen_ms"], tx.event_ms)
                e["last_seen_ms"] = max(e["last_seen_ms"], tx.event_ms)
            else:
                g.add_edge(a, b, count=1, amount_minor_sum=tx.amount_minor,
                           first_seen_ms=tx.event_ms, last_seen_ms=tx.event_ms, fraud_count=0)
        nodes["Site"].add(tx.site_id)
    return {
        "nodes": {label: sorted(ids) for label, ids in nodes.items()},
        "rels": {rel: {(a, b): dict(data) for a, b, data in g.edges(data=True)}
                 for rel, g in graphs.items()},
    }


def graph_state(driver: Any) -> dict[str, Any]:
    nodes = {}
    for label in ("User", "Card", "Site", "Device", "IP"):
        records, _, _ = driver.execute_query(
            "MATCH (n) WHERE $label IN labels(n) RETURN n.id AS id", label=label)
        nodes[label] = sorted(r["id"] for r in records)
    rels = {}
    for rel, (a_label, _, b_label, _) in RELS.items():
        records, _, _ = driver.execute_query(
            "MATCH (a)-[r]->(b) WHERE type(r) = $rel AND $a IN labels(a) AND $b IN labels(b) "
            "RETURN a.id AS a, b.id AS b, properties(r) AS p", rel=rel, a=a_label, b=b_label)
        rels[rel] = {(r["a"], r["b"]): r["p"] for r in records}
    return {"nodes": nodes, "rels": rels}


def assert_same_graph(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equality, with a readable account of the first differences when it fails."""
    problems = []
    for label, ids in expected["nodes"].items():
        got = set(actual["nodes"][label])
        if got != set(ids):
            problems.append(f"{label}: missing {sorted(set(ids) - got)[:3]}, "
                            f"extra {sorted(got - set(ids))[:3]}")
    for rel, edges in expected["rels"].items():
        got = actual["rels"][rel]
        wrong = [(k, got.get(k), v) for k, v in edges.items() if got.get(k) != v]
        extra = set(got) - set(edges)
        if wrong or extra:
            problems.append(f"{rel}: {len(wrong)} wrong (e.g. {wrong[:2]}), {len(extra)} extra")
    assert not problems, "\n".join(problems)


def detail_count(driver: Any) -> int:
    return int(driver.execute_query("MATCH (t:Transaction) RETURN count(t) AS n").records[0]["n"])


def detail_ids(driver: Any) -> set[str]:
    records, _, _ = driver.execute_query("MATCH (t:Transaction) RETURN t.id AS id")
    return {r["id"] for r in records}


@pytest.fixture
def driver(stack: Settings) -> Iterator[Any]:
    assert stack.neo4j.password
    drv = neo4j_driver.connect(stack.neo4j.uri, stack.neo4j.user, stack.neo4j.password)
    clear_graph(drv)  # Neo4j Community has one database: start from an empty graph
    yield drv
    drv.close()


@pytest.fixture
def stream(stack: Settings, unique: str, tmp_path: Path) -> tuple[Settings, list[Transaction]]:
    """A seeded stream on this test's own topics; returns settings pointing at them."""
    names = [f"test-proj-{unique}", f"test-proj-dlq-{unique}", f"test-proj-labels-{unique}"]
    kafka.ensure_topics(stack.kafka.bootstrap, names, partitions=3)
    sink = KafkaSink(Publisher(stack.kafka.bootstrap), names[0], names[2])
    generate(Generator(CONFIG), sink, tmp_path / "labels.jsonl", count=COUNT, duration=None,
             rate=0, progress=lambda _n: None)
    transactions = [tx for tx, _ in itertools.islice(Generator(CONFIG), COUNT)]
    topics = dataclasses.replace(stack.topics, transactions=names[0], dlq=names[1],
                                 labels=names[2])
    return dataclasses.replace(stack, topics=topics), transactions


def run_projector(settings: Settings, group: str, **options: Any) -> projector.ProjectorStats:
    opts = projector.ProjectorOptions(group=group, until_idle=3.0, **options)
    return projector.run(settings, opts, DecoderConfig())


def test_projection_equals_the_oracle_and_replays_change_nothing(
        driver: Any, stream: tuple[Settings, list[Transaction]], unique: str) -> None:
    settings, transactions = stream
    expected = oracle(transactions)

    stats = run_projector(settings, f"proj-{unique}", batch_size=4000)
    assert (stats.consumed, stats.projected, stats.duplicates) == (COUNT, COUNT, 0)
    assert graph_state(driver) == expected
    assert detail_ids(driver) == {tx.transaction_id for tx in transactions}
    # the cursors say which detail setting wrote them (a daemon checks its own against it)
    progress = detect.projection_progress(driver, settings.topics.transactions)
    assert {p.detail for p in progress.values()} == {"all"}

    # Same group from the beginning: skipped by transaction id (the detail is there).
    again = run_projector(settings, f"proj-{unique}", from_beginning=True)
    assert (again.consumed, again.projected, again.duplicates) == (COUNT, 0, COUNT)
    # Another group (as if a second deployment re-read the topic): skipped by transaction id.
    other = run_projector(settings, f"proj-other-{unique}", batch_size=7000)
    assert (other.consumed, other.projected, other.duplicates) == (COUNT, 0, COUNT)
    # The same transactions produced again under new offsets: skipped by transaction id.
    publisher = Publisher(settings.kafka.bootstrap)
    for tx in transactions[:5000]:
        publisher.send(settings.topics.transactions, tx.card_id.encode(), encode(tx))
    publisher.flush()
    resent = run_projector(settings, f"proj-{unique}")
    assert (resent.consumed, resent.projected, resent.duplicates) == (5000, 0, 5000)
    assert graph_state(driver) == expected


def test_with_flagged_detail_the_projection_writes_the_aggregates_alone(
        driver: Any, stream: tuple[Settings, list[Transaction]], unique: str) -> None:
    """``FRAUDGRAPH_GRAPH_DETAIL=flagged``: the same entities and aggregates, no detail
    (the daemon writes its flagged transactions'); a message published twice is dropped
    by the projector's memory of recent ids, a replay by the offset cursors."""
    settings, transactions = stream
    settings = dataclasses.replace(settings, neo4j=dataclasses.replace(settings.neo4j,
                                                                       detail="flagged"))
    publisher = Publisher(settings.kafka.bootstrap)
    for tx in transactions[:5000]:
        publisher.send(settings.topics.transactions, tx.card_id.encode(), encode(tx))
    publisher.flush()
    stats = run_projector(settings, f"bare-{unique}", batch_size=4000)
    assert (stats.consumed, stats.projected, stats.duplicates) == (COUNT + 5000, COUNT, 5000)
    assert_same_graph(graph_state(driver), oracle(transactions))
    assert detail_count(driver) == 0
    progress = detect.projection_progress(driver, settings.topics.transactions)
    assert {p.detail for p in progress.values()} == {"flagged"}
    again = run_projector(settings, f"bare-{unique}", from_beginning=True)
    assert (again.consumed, again.projected, again.duplicates) == (COUNT + 5000, 0, COUNT + 5000)
    assert_same_graph(graph_state(driver), oracle(transactions))


def test_a_batch_redelivered_to_another_projector_or_group_adds_nothing_twice(
        driver: Any) -> None:
    """Without detail nothing in the graph tells a projected transaction by its id, so
    the offsets are the guard: read under lock inside the write transaction, they stop
    a batch redelivered to a projector that did not write it (a rebalance, a crash
    before the Kafka commit) and a second group re-reading the topic, both with empty
    memories; a batch straddling the cursor adds only its new part."""
    txs = [tx for tx, _ in itertools.islice(Generator(CONFIG), 3000)]
    topic = "test-redelivery"

    def write(writer: GraphWriter, group: str, start: int, stop: int) -> tuple[int, int]:
        part = txs[start:stop]
        cursors = [Cursor(f"{group}:{topic}:0", topic, 0, stop - 1,
                          max(t.event_ms for t in part))]
        result = writer.project(part, cursors, [(topic, 0, offset)
                                               for offset in range(start, stop)])
        return result.projected, result.duplicates

    assert write(GraphWriter(driver, detail=False), "g", 0, 2000) == (2000, 0)
    assert write(GraphWriter(driver, detail=False), "g", 0, 2000) == (0, 2000)
    assert write(GraphWriter(driver, detail=False), "other", 0, 2000) == (0, 2000)
    assert write(GraphWriter(driver, detail=False), "g", 1500, 3000) == (1000, 500)
    assert_same_graph(graph_state(driver), oracle(txs))
    records, _, _ = driver.execute_query(
        "MATCH (p:ProjectionCursor {topic: $topic}) RETURN p.id AS id, p.offset AS offset, "
        "keys(p) AS keys ORDER BY id", topic=topic)
    assert [(r["id"], r["offset"]) for r in records] == [
        (f"g:{topic}:0", 2999), (f"other:{topic}:0", 1999)]
    assert all("_lock" not in r["keys"] for r in records)


def test_sigkill_mid_stream_then_restart_equals_the_oracle(
        driver: Any, stream: tuple[Settings, list[Transaction]], unique: str) -> None:
    settings, transactions = stream
    env = {**os.environ, "FRAUDGRAPH_TOPIC_TRANSACTIONS": settings.topics.transactions,
           "FRAUDGRAPH_TOPIC_DLQ": settings.topics.dlq}
    argv = [FRAUDGRAPH, "project", "--group", f"kill-{unique}", "--batch-size", "1000",
            "--metrics-port", "0"]
    for kills in range(2):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        target = (kills + 1) * COUNT // 3
        while time.monotonic() < deadline and detail_count(driver) < target:
            time.sleep(0.2)
        projected = detail_count(driver)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert 0 < projected < COUNT, "the kill must land mid-stream"
    finished = subprocess.run([*argv, "--until-idle", "3s"], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr
    assert_same_graph(graph_state(driver), oracle(transactions))
    assert detail_ids(driver) == {tx.transaction_id for tx in transactions}


def test_retention_prunes_only_old_detail_and_keeps_aggregates(
        driver: Any, stream: tuple[Settings, list[Transaction]], unique: str) -> None:
    settings, transactions = stream
    run_projector(settings, f"ret-{unique}")
    check_reads(driver, transactions)
    newest = max(tx.event_ms for tx in transactions)
    window = 3 * 86_400_000
    deleted = GraphWriter(driver).prune(window, newest, limit=4000)
    keep = {tx.transaction_id for tx in transactions if tx.event_ms >= newest - window}
    assert deleted == COUNT - len(keep) > 0 and keep
    assert detail_ids(driver) == keep
    assert graph_state(driver) == oracle(transactions)
    assert GraphWriter(driver).prune(window, newest) == 0  # idempotent


def check_reads(driver: Any, transactions: list[Transaction]) -> None:
    """Export and batch features agree with the oracle."""
    expected = oracle(transactions)
    exported = export_networkx(driver)
    for rel, edges in expected["rels"].items():
        a_label, _, b_label, _ = RELS[rel]
        got = {(a, b): data for (al, a), (bl, b), key, data in exported.edges(keys=True,
                                                                             data=True)
               if key == rel and (al, bl) == (a_label, b_label)}
        assert got == edges, rel
    arrays = to_arrays(exported)
    assert arrays.node_ids["Device"] == expected["nodes"]["Device"]
    src, dst = arrays.edge_index[("Card", "USED_ON", "Device")]
    assert len(src) == len(expected["rels"]["USED_ON"])
    assert {(arrays.node_ids["Card"][i], arrays.node_ids["Device"][j])
            for i, j in zip(src, dst, strict=True)} == set(expected["rels"]["USED_ON"])

    cards_per_device: dict[str, set[str]] = {}
    users_per_device: dict[str, set[str]] = {}
    for tx in transactions:
        if tx.device_id:
            cards_per_device.setdefault(tx.device_id, set()).add(tx.card_id)
            users_per_device.setdefault(tx.device_id, set()).add(tx.user_id)
    shared = sorted(cards_per_device, key=lambda d: -len(cards_per_device[d]))[:50]
    features = entity_features(driver, devices=[*shared, "no-such-device"])["devices"]
    assert set(features) == set(shared)
    for device in shared:
        assert features[device]["cards"] == len(cards_per_device[device])
        assert features[device]["users"] == len(users_per_device[device])
