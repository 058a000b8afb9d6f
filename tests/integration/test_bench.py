"""`fraudgraph bench` end to end on a small count: it completes, its references ran over
the same input, and its JSON holds the figures (the numbers themselves are measured, not
asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from fraudgraph import connect
from fraudgraph.settings import Settings
from graph.projection import PARTS
from ingest import kafka
from tests.integration.cli_helpers import run_cli


def test_bench_runs_daemon_projection_and_both_references(stack: Settings,
                                                          tmp_path: Path) -> None:
    before = set(kafka.topic_names(stack.kafka.bootstrap))
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--count", "3000", "--one-at-a-time", "300", "--peer", "quix",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["decisions"] == 3000 and figures["transactions"] == 3000
    assert sum(figures["outcomes"].values()) == 3000 and set(figures["outcomes"]) == {
        "allow", "review", "block"}
    assert figures["decisions_per_second"] > 0
    assert figures["one_at_a_time"]["messages"] == 300 and figures["one_at_a_time"]["ratio"] > 0
    peer = figures["quix_peer"]
    assert peer["messages"] == 3000 and peer["ratio"] > 0
    assert 0 < peer["agreement"] <= 1  # compared on all 3,000 decisions
    assert figures["projection_per_second"] > 0 and figures["projection_lag_at_end"] >= 0
    assert figures["checkpoints"]["written"] >= 1  # the clean stop's, at least
    calls = figures["daemon_neo4j_calls"]  # every batch read the graph, once
    assert calls["batch_features"]["calls"] >= 1 and calls["batch_features"]["seconds"] > 0
    assert calls["projection_progress"]["calls"] >= 1
    assert "daemon's Neo4j calls" in result.stdout
    assert isinstance(figures["batches_decided_before_the_graph"], int)
    assert set(figures["graph_wait_seconds"]) == {"projection", "labels"}
    assert figures["graph_wait_limit_seconds"] == 60.0  # the bench's default
    assert figures["graph_detail"] == "all"
    assert set(figures["cpu_seconds"]) >= {"detector daemon", "projector", "kafka", "neo4j",
                                           "postgres"}
    assert set(figures["latency_ms"]) == {"p50", "p95", "p99"}
    assert "Quix Streams peer (legacy rules)" in result.stdout
    # the run's topics are gone, the peer's own (decisions, changelog) included
    assert set(kafka.topic_names(stack.kafka.bootstrap)) <= before


def test_bench_projection_projects_every_transaction_and_leaves_no_topic(
        stack: Settings) -> None:
    """Into an emptied graph (the test owns the graph meanwhile, as the crash and
    detection tests do); its labels folder need not exist beforehand."""
    before = set(kafka.topic_names(stack.kafka.bootstrap))
    result = run_cli("bench-projection", "-n", "2000", "--batch-sizes", "500,1000", "--yes",
                     "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["batch_size"], r["transactions"]) for r in rows] == [(500, 2000), (1000, 2000)]
    assert all(r["tx_per_second"] > 0 for r in rows)
    assert [list(r["part_us_per_tx"]) for r in rows] == [list(PARTS)] * 2  # every part, in order
    assert all(v >= 0 for r in rows for v in r["part_us_per_tx"].values())
    assert all(r["neo4j_cpu_us_per_tx"] > 0 for r in rows)  # the stack's Neo4j worked
    assert set(kafka.topic_names(stack.kafka.bootstrap)) <= before


def test_bench_projection_leaves_out_the_parts_it_is_told_to(stack: Settings) -> None:
    """What a part costs: the run without it (no detail, no HOLDS here); the graph it
    leaves holds the rest."""
    result = run_cli("bench-projection", "-n", "1000", "--batch-sizes", "1000", "--yes",
                     "--leave-out", "detail", "--leave-out", "rel_holds", "--format", "json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert list(row["part_us_per_tx"]) == [p for p in PARTS if p not in ("detail", "rel_holds")]
    driver = connect.neo4j(stack)
    try:
        records, _, _ = driver.execute_query(
            "RETURN COUNT { (:Transaction) } AS details, COUNT { ()-[:HOLDS]->() } AS holds, "
            "COUNT { ()-[:PAID_AT]->() } AS paid_at")
    finally:
        driver.close()
    assert (records[0]["details"], records[0]["holds"]) == (0, 0) and records[0]["paid_at"] > 0
    refused = run_cli("bench-projection", "-n", "1000", "--yes", "--leave-out", "cursors")
    assert refused.returncode == 2 and "'cursors' is not one of" in refused.stderr
