"""The blocklist in PostgreSQL is the record: a person's revocation outlives restarts and
automatic re-listing, and the graph's blocked marks are made to match it at start."""

from __future__ import annotations

import msgspec

from detectors.blocklist import NewEntry
from fraudgraph import connect
from fraudgraph.settings import Settings
from graph import detect
from ingest.transaction import encode
from tests.integration.test_daemon import produce, run_daemon, scratch, tx
from tests.integration.test_projection import run_projector


def _marked(settings: Settings, label: str, entity_id: str) -> dict[str, object] | None:
    driver = connect.neo4j(settings)
    try:
        records, _, _ = driver.execute_query(
            f"MATCH (n:{label} {{id: $id}}) RETURN n.blocked AS blocked, "
            "n.blocked_reason AS reason, n:Blocked AS labelled", id=entity_id)
    finally:
        driver.close()
    return dict(records[0]) if records else None


def test_a_mark_lost_in_a_crash_is_set_at_start_and_a_revoked_entrys_mark_cleared(
        stack: Settings, unique: str) -> None:
    settings = scratch(stack, unique)
    produce(settings, [encode(tx(unique, i, i, card=card)) for i, card in
                       enumerate(["lost", "stale", "plain"])])
    store = connect.blocklist(settings)
    try:
        # committed in PostgreSQL, then the process died before the Neo4j mark
        store.upsert([NewEntry("card", f"{unique}-lost", "velocity", "rule", 0.8, {})], "daemon")
        # marked, then revoked while Neo4j was away (the mark stayed)
        store.upsert([NewEntry("card", f"{unique}-stale", "velocity", "rule", 0.8, {})], "daemon")
        store.revoke("card", f"{unique}-stale", "analyst", "false positive")
        run_projector(settings, f"test-projection-{unique}")
        driver = connect.neo4j(settings)
        try:
            detect.mark_blocked(driver, [("card", f"{unique}-stale", "velocity", "rule")])
        finally:
            driver.close()
        assert _marked(settings, "Card", f"{unique}-lost") == {
            "blocked": None, "reason": None, "labelled": False}
        run_daemon(settings, unique, None)  # the restart: its worker reconciles at once
        assert _marked(settings, "Card", f"{unique}-lost") == {
            "blocked": True, "reason": "velocity", "labelled": True}
        assert _marked(settings, "Card", f"{unique}-stale") == {
            "blocked": None, "reason": None, "labelled": False}
        assert _marked(settings, "Card", f"{unique}-plain") == {
            "blocked": None, "reason": None, "labelled": False}
    finally:
        store.close()


def test_a_revoked_ring_member_stays_revoked_after_a_restart(stack: Settings,
                                                             unique: str) -> None:
    settings = scratch(stack, unique, partitions=1)
    # three users paying with one card: a ring (rings link users through shared cards)
    ring = [msgspec.structs.replace(tx(unique, i, i, card="ring"), user_id=f"{unique}-{who}")
            for i, who in enumerate(["ux", "uy", "uz"])]
    produce(settings, [encode(t) for t in ring] + [encode(tx(unique, 9, 5, card="later"))])
    run_daemon(settings, unique, None)
    store = connect.blocklist(settings)
    try:
        listed = {u: store.get("user", f"{unique}-{u}") for u in ("ux", "uy", "uz")}
        assert all(e is not None and e.source == "cypher" and e.revoked_at is None
                   for e in listed.values()), listed
        assert store.revoke("user", f"{unique}-ux", "analyst", "a customer, not a ring")
        history = len(store.history("user", f"{unique}-ux"))
        # the restarted daemon sweeps again with nothing in memory: it finds the same ring
        produce(settings, [encode(tx(unique, 20 + i, 10 + i, card="more")) for i in range(3)])
        run_daemon(settings, unique, None)
        after = store.get("user", f"{unique}-ux")
        assert after is not None and after.revoked_at is not None
        assert after.revoked_by == "analyst"
        assert len(store.history("user", f"{unique}-ux")) == history  # not re-listed
        assert _marked(settings, "User", f"{unique}-ux") == {
            "blocked": None, "reason": None, "labelled": False}
        uy = store.get("user", f"{unique}-uy")
        assert uy is not None and uy.revoked_at is None  # the others stay listed
        # a person may list it again
        store.upsert([NewEntry("user", f"{unique}-ux", "confirmed after all", "manual", 1.0,
                               {})], "analyst")
        again = store.get("user", f"{unique}-ux")
        assert again is not None and again.revoked_at is None and again.source == "manual"
    finally:
        store.close()
