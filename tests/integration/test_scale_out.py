"""`fraudgraph bench-scale-out` end to end: one daemon and one projector, then two of
each in their consumer groups, over the same stream at a steady offered rate.

What must hold whatever the state design: each layout decides every transaction of the
stream (none lost to a rebalance), two projectors in one group write each transaction
into the graph exactly once, the run leaves no topic and no schema behind, and no
reason whose state is the card's own or the shared graph's differs between the
layouts.  How many decisions are identical is measured and reported (`fraudgraph
bench-scale-out`), not asserted: the user's profile and the blocklist entries one
daemon flags still reach the other layouts' transactions differently (README,
"Scaling out")."""

from __future__ import annotations

import json
from pathlib import Path

from fraudgraph import connect
from fraudgraph.settings import Settings
from ingest import kafka
from tests.integration.cli_helpers import run_cli

COUNT = 1500
LAYOUT_FREE = {"velocity", "card_testing", "shared_device", "shared_ip", "shared_card",
               "fraud_ring", "near_fraud", "compromised_site"}


def test_two_daemons_and_two_projectors_decide_and_project_every_transaction_once(
        stack: Settings, tmp_path: Path) -> None:
    before, schemas = set(kafka.topic_names(stack.kafka.bootstrap)), _schemas(stack)
    out = tmp_path / "scale-out.json"
    result = run_cli("bench-scale-out", "-n", str(COUNT), "--rate", "300", "--warm-up", "0",
                     "--yes", "--json", str(out))
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    layouts = {x["layout"]: x for x in figures["layouts"]}
    assert list(layouts) == ["1+1", "2+2"]
    for layout in layouts.values():
        assert layout["decided"] == COUNT  # every transaction, by one daemon or the other
        assert layout["records"] >= COUNT and layout["decisions_per_second"] > 0
    (comparison,) = figures["comparisons"]
    assert comparison["layout"] == "2+2" and comparison["compared"] == COUNT
    assert 0 <= comparison["identical"] <= COUNT
    # the card's history is the partition owner's; devices, IPs and the graph's checks
    # are read from the graph as of each transaction's time: the same in any layout
    assert not set(comparison["differing_codes"]) & LAYOUT_FREE, comparison
    assert "identical to 1+1" in result.stdout
    crowded = run_cli("bench-scale-out", "--layout", "5+1", "--yes")
    assert crowded.returncode == 2 and "more processes in a group than" in crowded.stderr
    driver = connect.neo4j(stack)
    try:  # the last layout's graph: two projectors, each transaction written once
        records, _, _ = driver.execute_query(
            "MATCH (t:Transaction) RETURN count(t) AS details, count(DISTINCT t.id) AS ids, "
            "COUNT { (:Card) } AS cards")
        holds, _, _ = driver.execute_query(  # a transaction written twice would count twice
            "MATCH ()-[h:HOLDS]->() RETURN sum(h.count) AS counted")
        cursors, _, _ = driver.execute_query(
            "MATCH (p:ProjectionCursor) WHERE p.id STARTS WITH 'scale-projection-' "
            "RETURN count(p) AS partitions")
    finally:
        driver.close()
    assert (records[0]["details"], records[0]["ids"]) == (COUNT, COUNT)
    assert holds[0]["counted"] == COUNT and records[0]["cards"] > 0
    assert cursors[0]["partitions"] == stack.kafka.partitions
    assert set(kafka.topic_names(stack.kafka.bootstrap)) <= before
    assert _schemas(stack) <= schemas  # each layout's blocklist schema dropped


def _schemas(settings: Settings) -> set[str]:
    store = connect.blocklist(settings)
    try:
        with store.conn.cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata")
            rows = cur.fetchall()
    finally:
        store.close()
    return {row[0] for row in rows}
