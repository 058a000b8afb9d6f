"""The blocklist store and `fraudgraph blocklist` against the real PostgreSQL.

Each test works in its own PostgreSQL schema (``search_path``), created by the
store's own migrate(), so row counts are exact whatever else writes to the
database; one test also runs the CLI against the default schema.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from psycopg2 import sql

from detectors.blocklist import BlocklistCache, FlaggedTransaction, LabelRow, NewEntry
from fraudgraph import blocklist_cli, connect
from fraudgraph.cli import cli
from fraudgraph.errors import FraudgraphError
from fraudgraph.settings import Settings
from graph import detect
from storage import postgres as pg
from storage.blocklist import BlocklistListener, BlocklistStore


@pytest.fixture
def schema(stack: Settings, unique: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for this test, dropped afterwards."""
    name = f"test_blocklist_{unique}"
    conn = pg.connect(stack.postgres.dsn())
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        yield name
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    finally:
        conn.close()


@pytest.fixture
def dsn(stack: Settings, schema: str) -> str:
    """A DSN whose sessions use only this test's schema."""
    return f"{stack.postgres.dsn()} options='-c search_path={schema}'"


@pytest.fixture
def store(dsn: str) -> Iterator[BlocklistStore]:
    opened = BlocklistStore.open(dsn)
    opened.migrate()
    yield opened
    opened.close()


def query(store: BlocklistStore, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with store.conn, store.conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def actions(store: BlocklistStore, entity_type: str, entity_id: str) -> list[str]:
    return [h["action"] for h in store.history(entity_type, entity_id)]


def new(entity_id: str, score: float = 0.5, ttl: int | None = None, reason: str = "burst",
        source: str = "rule", entity_type: str = "card") -> NewEntry:
    return NewEntry(entity_type, entity_id, reason, source, score, {"rule": reason}, ttl)


def test_migrate_is_idempotent_and_creates_the_tables(store: BlocklistStore) -> None:
    store.migrate()
    store.migrate()
    assert store.counts() == {"blocklist": 0, "blocklist_history": 0,
                              "flagged_transactions": 0, "fraud_labels": 0}


def test_upsert_twice_leaves_one_row_and_one_history_row_per_entity(
        store: BlocklistStore, unique: str) -> None:
    entries = [new(f"c-{unique}", 0.5), new(f"c-{unique}", 0.7, reason="velocity"),
               new(f"u-{unique}", 0.9, entity_type="user", source="gnn")]
    assert store.upsert(entries, "test") == 2  # the duplicate key collapses
    assert store.upsert(entries, "test") == 0
    assert store.upsert(list(reversed(entries)), "test") == 0
    assert store.counts() == {"blocklist": 2, "blocklist_history": 2,
                              "flagged_transactions": 0, "fraud_labels": 0}
    assert query(store, "SELECT entity_type, entity_id, reason, source, score, evidence, "
                        "expires_at, revoked_at, created_at = updated_at "
                        "FROM blocklist ORDER BY entity_type") == [
        ("card", f"c-{unique}", "velocity", "rule", 0.7, {"rule": "velocity"}, None, None, True),
        ("user", f"u-{unique}", "burst", "gnn", 0.9, {"rule": "burst"}, None, None, True)]
    assert query(store, "SELECT entity_type, entity_id, action, score, actor "
                        "FROM blocklist_history ORDER BY entity_type") == [
        ("card", f"c-{unique}", "add", 0.7, "test"), ("user", f"u-{unique}", "add", 0.9, "test")]


def test_a_large_batch_is_written_whole(store: BlocklistStore, unique: str) -> None:
    entries = [new(f"c{i}-{unique}", ttl=3600) for i in range(2500)]
    assert store.upsert(entries + entries[:100], "t") == 2500
    flags = [flagged(f"t{i}-{unique}") for i in range(2500)]
    assert store.record_flagged(flags) == 2500
    assert store.counts() == {"blocklist": 2500, "blocklist_history": 2500,
                              "flagged_transactions": 2500, "fraud_labels": 0}


def test_revoke_then_upsert_reactivates_and_keeps_created_at(
        store: BlocklistStore, unique: str) -> None:
    card = f"c-{unique}"
    store.upsert([new(card, 0.9, reason="first")], "rules")
    created = store.get("card", card)
    assert created is not None and created.active_at(datetime.now(UTC))

    assert store.revoke("card", card, "analyst", "false positive") is True
    assert store.revoke("card", card, "analyst", "again") is False
    assert store.revoke("card", f"missing-{unique}", "analyst", "none") is False
    revoked = store.get("card", card)
    assert revoked is not None
    assert (revoked.revoked_by, revoked.score, revoked.reason) == ("analyst", 0.9, "first")
    assert revoked.revoked_at is not None and revoked.updated_at > created.updated_at
    assert not revoked.active_at(datetime.now(UTC))
    assert store.list() == []
    assert store.list(include_inactive=True) == [revoked]

    # A person's revocation wins over automatic sources: the rules cannot list it again
    refused = store.upsert_many([new(card, 0.95, reason="burst again")], "rules")
    assert (refused.changed, refused.refused) == (0, frozenset({("card", card)}))
    assert store.get("card", card) == revoked

    # A person lists it again: re-activation takes the incoming values, even a lower
    # score; created_at stays.
    assert store.upsert([new(card, 0.4, reason="second", source="manual")], "analyst") == 1
    again = store.get("card", card)
    assert again is not None
    assert (again.revoked_at, again.revoked_by, again.score, again.reason, again.source) == (
        None, None, 0.4, "second", "manual")
    assert again.created_at == created.created_at
    assert again.updated_at > revoked.updated_at
    assert actions(store, "card", card) == ["add", "revoke", "update"]
    history = store.history("card", card)
    assert [(h["actor"], h["reason"], h["score"]) for h in history] == [
        ("rules", "first", 0.9), ("analyst", "false positive", 0.9), ("analyst", "second", 0.4)]
    assert store.counts()["blocklist"] == 1


def test_active_rows_keep_the_higher_score_and_the_later_expiry(
        store: BlocklistStore, unique: str) -> None:
    card = f"c-{unique}"
    assert store.upsert([new(card, 0.5, ttl=600, reason="a")], "t") == 1
    first = store.get("card", card)
    assert first is not None
    assert first.expires_at == first.created_at + timedelta(seconds=600)

    # Lower score, shorter TTL: nothing changes, no history row.
    assert store.upsert([new(card, 0.3, ttl=60, reason="b")], "t") == 0
    assert store.get("card", card) == first

    # Higher score: its reason and evidence win; the later expiry is kept.
    assert store.upsert([new(card, 0.8, ttl=60, reason="c", source="cypher")], "t") == 1
    higher = store.get("card", card)
    assert higher is not None
    assert (higher.score, higher.reason, higher.source, higher.evidence, higher.expires_at) == (
        0.8, "c", "cypher", {"rule": "c"}, first.expires_at)

    # No TTL (never) beats any expiry, and then stays.
    assert store.upsert([new(card, 0.1, ttl=None, reason="d")], "t") == 1
    never = store.get("card", card)
    assert never is not None
    assert (never.expires_at, never.score, never.reason) == (None, 0.8, "c")
    assert store.upsert([new(card, 0.1, ttl=86_400, reason="e")], "t") == 0
    assert actions(store, "card", card) == ["add", "update", "update"]

    # An expired row counts as inactive: the next upsert re-activates it with its own values.
    query(store, "UPDATE blocklist SET expires_at = now() - interval '1 minute'")
    assert store.list() == []
    assert store.revoke("card", card, "analyst", "too late") is False
    assert store.upsert([new(card, 0.2, ttl=120, reason="f")], "t") == 1
    renewed = store.get("card", card)
    assert renewed is not None
    assert (renewed.score, renewed.reason, renewed.revoked_at) == (0.2, "f", None)
    assert renewed.expires_at == renewed.updated_at + timedelta(seconds=120)
    assert actions(store, "card", card) == ["add", "update", "update", "update"]


def test_the_entry_that_counts_earliest_keeps_the_row_whatever_the_order(
        store: BlocklistStore, unique: str) -> None:
    """A rule's flag at event time 100 and a label's entry counting from 500: the row
    counts from 100 with the rule's reason, whichever was written first (the label is
    applied as soon as the graph holds its transaction, often before the flag)."""
    flag = NewEntry("card", "", "velocity", "rule", 0.8, {"since_ms": 100}, 600)
    label = NewEntry("card", "", "confirmed_fraud", "label", 1.0, {"since_ms": 500}, 600)
    rows = []
    for order, card in (((flag, label), f"c-{unique}-a"), ((label, flag), f"c-{unique}-b")):
        for entry in order:
            store.upsert([dataclasses.replace(entry, entity_id=card)], "t")
        row = store.get("card", card)
        assert row is not None
        rows.append((row.reason, row.source, row.evidence, row.score))
    assert rows == [("velocity", "rule", {"since_ms": 100}, 1.0)] * 2
    # an entry without a time (a manual one) counts always, so it takes over
    store.upsert([NewEntry("card", f"c-{unique}-a", "stolen", "manual", 0.5, {}, 600)], "t")
    manual = store.get("card", f"c-{unique}-a")
    assert manual is not None and (manual.reason, manual.score) == ("stolen", 1.0)


def test_list_filters_and_orders_newest_first(store: BlocklistStore, unique: str) -> None:
    store.upsert([new(f"c1-{unique}", source="rule")], "t")
    store.upsert([new(f"c2-{unique}", source="gnn")], "t")
    store.upsert([new(f"u1-{unique}", entity_type="user", source="gnn")], "t")
    store.revoke("card", f"c1-{unique}", "t", "x")
    assert [e.entity_id for e in store.list()] == [f"u1-{unique}", f"c2-{unique}"]
    assert [e.entity_id for e in store.list(include_inactive=True)] == [
        f"c1-{unique}", f"u1-{unique}", f"c2-{unique}"]
    assert [e.entity_id for e in store.list(entity_type="card")] == [f"c2-{unique}"]
    assert [e.entity_id for e in store.list(source="gnn", limit=1)] == [f"u1-{unique}"]
    assert store.list(entity_type="ip") == []


def test_changed_since_moves_the_watermark_and_rereads_late_commits(
        store: BlocklistStore, unique: str) -> None:
    assert store.changed_since(None) == ([], None)
    store.upsert([new(f"a-{unique}"), new(f"b-{unique}")], "t")
    entries, watermark = store.changed_since(None)
    assert sorted(e.entity_id for e in entries) == [f"a-{unique}", f"b-{unique}"]
    assert watermark is not None and watermark == max(e.updated_at for e in entries)

    # Nothing new: the rows inside the safety margin are read again, the watermark stays.
    again, same = store.changed_since(watermark)
    assert (len(again), same) == (2, watermark)

    # Rows older than the margin are not read again.
    query(store, "UPDATE blocklist SET updated_at = updated_at - interval '1 minute'")
    assert store.changed_since(watermark) == ([], watermark)

    # A transaction that stamped updated_at 2 s before the watermark but committed
    # after it was read (the race the margin covers) is still picked up.
    query(store, "UPDATE blocklist SET updated_at = %s WHERE entity_id = %s",
          watermark - timedelta(seconds=2), f"a-{unique}")
    late, kept = store.changed_since(watermark)
    assert ([e.entity_id for e in late], kept) == ([f"a-{unique}"], watermark)

    store.revoke("card", f"b-{unique}", "t", "x")
    changed, newer = store.changed_since(watermark)
    assert [(e.entity_id, e.revoked_by) for e in changed] == [
        (f"a-{unique}", None), (f"b-{unique}", "t")]
    assert newer is not None and newer == changed[-1].updated_at > watermark


def test_cache_over_the_store_sees_additions_and_revocations(
        store: BlocklistStore, unique: str) -> None:
    cache = BlocklistCache(store.changed_since, refresh_seconds=3600)
    store.upsert([new(f"c-{unique}"), new(f"d-{unique}", ttl=3600)], "t")
    assert cache.refresh() == 2
    assert cache.hit("card", f"c-{unique}") == store.get("card", f"c-{unique}")
    assert len(cache) == 2
    store.revoke("card", f"c-{unique}", "analyst", "fp")
    assert cache.refresh() == 0  # throttled: no query
    assert cache.hit("card", f"c-{unique}") is not None
    assert cache.refresh(force=True) == 2  # the revoked row, and d re-read within the margin
    assert cache.hit("card", f"c-{unique}") is None
    assert len(cache) == 1


def test_listener_hears_committed_changes_of_its_schema_only(
        store: BlocklistStore, dsn: str, schema: str, unique: str) -> None:
    """The cache refreshes at once on a notified change, however long its poll interval."""
    listener, other = BlocklistListener.open(dsn, schema), BlocklistListener.open(dsn, "elsewhere")
    try:
        assert listener.changed() and other.changed()  # connected: catch up once
        assert not listener.changed()
        cache = BlocklistCache(store.changed_since, refresh_seconds=3600,
                               changed=listener.changed)
        assert cache.refresh() == 0 and cache.refresh() == 0  # the first load, then throttled
        store.upsert([new(f"n-{unique}")], "t")
        assert until(lambda: cache.hit("card", f"n-{unique}") is not None or cache.refresh() > 0)
        assert cache.hit("card", f"n-{unique}") is not None
        store.revoke("card", f"n-{unique}", "analyst", "fp")
        assert until(lambda: cache.refresh() > 0)
        assert cache.hit("card", f"n-{unique}") is None
        assert not other.changed()  # another schema's daemon is not woken
        assert cache.refresh() == 0  # nothing new was notified: throttled again
    finally:
        listener.close()
        other.close()


def until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def flagged(transaction_id: str, decision: str = "block") -> FlaggedTransaction:
    return FlaggedTransaction(transaction_id, decision, 0.93, [{"rule": "velocity", "w": 0.5}],
                              "card-1", "user-1", "site-1", None, 12_345, "EUR",
                              1_714_564_800_123, 1_714_564_801_000)


def test_record_flagged_ignores_duplicates(store: BlocklistStore, unique: str) -> None:
    rows = [flagged(f"t1-{unique}"), flagged(f"t2-{unique}", "review"), flagged(f"t1-{unique}")]
    assert store.record_flagged(rows) == 2
    assert store.record_flagged(rows) == 0
    assert store.record_flagged([dataclasses.replace(rows[0], decision="review")]) == 0
    assert store.record_flagged([]) == 0
    assert store.counts()["flagged_transactions"] == 2
    assert query(store, "SELECT transaction_id, decision, score, reasons, card_id, device_id, "
                        "amount_minor, currency, event_time, decided_at "
                        "FROM flagged_transactions ORDER BY transaction_id") == [
        (f"t1-{unique}", "block", 0.93, [{"rule": "velocity", "w": 0.5}], "card-1", None,
         12_345, "EUR", datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC),
         datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)),
        (f"t2-{unique}", "review", 0.93, [{"rule": "velocity", "w": 0.5}], "card-1", None,
         12_345, "EUR", datetime(2024, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC),
         datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC))]


def test_flagged_rows_come_back_whole_until_marked_as_on_the_graph(
        store: BlocklistStore, unique: str) -> None:
    """What a daemon's worker had not written onto the graph comes back as it was
    stored (the node's detail included), within the window, until marked."""
    now_ms = round(time.time() * 1000)
    fresh = [dataclasses.replace(flagged(f"t{i}-{unique}"), decided_ms=now_ms + i,
                                 country="GB", ip_address=f"10.0.0.{i}",
                                 merchant_category="5411", card_present=i == 0)
             for i in range(2)]
    bare = dataclasses.replace(flagged(f"t2-{unique}"), decided_ms=now_ms + 2)
    stale = dataclasses.replace(flagged(f"t3-{unique}"), decided_ms=now_ms - 7_200_000)
    assert store.record_flagged([*fresh, bare, stale]) == 4
    assert store.ungraphed(3600, 10) == [*fresh, bare]  # oldest first; not the stale one
    assert store.ungraphed(3600, 1) == fresh[:1]
    assert store.mark_graphed([fresh[0].transaction_id, bare.transaction_id]) == 2
    assert store.mark_graphed([fresh[0].transaction_id]) == 0
    assert store.mark_graphed([]) == 0
    assert store.ungraphed(3600, 10) == [fresh[1]]
    assert store.ungraphed(3 * 3600, 10) == [stale, fresh[1]]


def test_record_flagged_keeps_any_text_exactly(store: BlocklistStore, unique: str) -> None:
    """The rows travel as CSV (COPY): quotes, commas, newlines, backslashes, tabs and
    non-ASCII arrive unchanged, an empty string stays empty and None is NULL."""
    odd = f'{unique},"quoted"\n\\N\t é ✓'
    row = dataclasses.replace(flagged(odd), reasons=[{"detail": odd}], card_id="",
                              site_id=odd, amount_minor=None)
    assert store.record_flagged([row]) == 1
    assert query(store, "SELECT transaction_id, reasons, card_id, user_id, site_id, "
                        "device_id, amount_minor FROM flagged_transactions") == [
        (odd, [{"detail": odd}], "", "user-1", odd, None, None)]


def test_record_labels_upserts_and_never_goes_back_in_time(
        store: BlocklistStore, unique: str) -> None:
    t1, t2 = f"t1-{unique}", f"t2-{unique}"
    first = [LabelRow(t1, "fraud", "chargeback", "2024-05-01T10:00:00Z", card_id="card-1"),
             LabelRow(t1, "genuine", "analyst", "2024-05-01T09:00:00Z"),  # older, same batch
             LabelRow(t2, "genuine", "analyst", "2024-05-02T08:00:00+02:00")]
    assert store.record_labels(first) == 2
    assert store.record_labels(first) == 0  # a replay changes nothing
    assert store.record_labels([LabelRow(t1, "genuine", "analyst", "2024-05-03T00:00:00Z")]) == 1
    assert store.record_labels([LabelRow(t1, "fraud", "late", "2024-05-02T00:00:00Z")]) == 0
    assert store.counts()["fraud_labels"] == 2
    assert query(store, "SELECT transaction_id, label, source, reported_at, card_id "
                        "FROM fraud_labels ORDER BY transaction_id") == [
        (t1, "genuine", "analyst", datetime(2024, 5, 3, tzinfo=UTC), "card-1"),
        (t2, "genuine", "analyst", datetime(2024, 5, 2, 6, tzinfo=UTC), None)]


# -- the CLI ------------------------------------------------------------------


def cli_with_blocklist() -> click.Group:
    if "blocklist" not in cli.commands:
        cli.add_command(blocklist_cli.blocklist)
    return cli


def run(*args: str, dsn: str | None = None, **more_env: str) -> Result:
    env = {"COLUMNS": "200", "USER": "tester", **more_env}
    if dsn is not None:
        env["FRAUDGRAPH_POSTGRES_DSN"] = dsn
    return CliRunner().invoke(cli_with_blocklist(), ["blocklist", *args], env=env)


def test_cli_add_list_show_remove(store: BlocklistStore, dsn: str, unique: str) -> None:
    card = f"c-{unique}"
    added = run("add", "card", card, "--reason", "stolen", "--ttl", "6h", "--score", "0.8",
                dsn=dsn)
    assert added.exit_code == 0, added.output
    assert f"blocklisted card {card}" in added.output
    entry = store.get("card", card)
    assert entry is not None
    assert (entry.source, entry.reason, entry.score, entry.evidence) == (
        "manual", "stolen", 0.8, {})
    assert entry.expires_at == entry.created_at + timedelta(hours=6)

    replay = run("add", "card", card, "--reason", "stolen", "--ttl", "1h", "--score", "0.8",
                 dsn=dsn)
    assert replay.exit_code == 0 and "unchanged" in replay.output
    assert store.get("card", card) == entry

    listed = run("list", "--type", "card", dsn=dsn)
    assert listed.exit_code == 0, listed.output
    assert card in listed.output and "stolen" in listed.output

    removed = run("remove", "card", card, "--reason", "customer called", dsn=dsn)
    assert removed.exit_code == 0, removed.output
    revoked = store.get("card", card)
    assert revoked is not None and revoked.revoked_by == "tester"
    assert [(h["action"], h["actor"], h["reason"]) for h in store.history("card", card)] == [
        ("add", "tester", "stolen"), ("revoke", "tester", "customer called")]

    shown = run("show", "card", card, dsn=dsn)
    assert shown.exit_code == 0, shown.output
    assert "revoked" in shown.output and "customer called" in shown.output
    assert run("list", dsn=dsn).output.count(card) == 0
    assert run("list", "--all", dsn=dsn).output.count(card) == 1
    assert store.counts() == {"blocklist": 1, "blocklist_history": 2,
                              "flagged_transactions": 0, "fraud_labels": 0}


def test_cli_errors_are_one_line(store: BlocklistStore, dsn: str, unique: str) -> None:
    again = run("remove", "card", f"c-{unique}", dsn=dsn)
    assert again.exit_code == 1
    assert isinstance(again.exception, FraudgraphError)
    assert str(again.exception) == (f"card c-{unique} has no active blocklist entry "
                                    "(see `fraudgraph blocklist list --all`)")
    missing = run("show", "user", f"u-{unique}", dsn=dsn)
    assert isinstance(missing.exception, FraudgraphError)
    assert str(missing.exception) == f"user u-{unique} has never been on the blocklist"
    bad_type = run("add", "phone", "x", "--reason", "r", dsn=dsn)
    assert bad_type.exit_code == 2 and "'phone' is not one of" in bad_type.output
    bad_score = run("add", "card", "x", "--reason", "r", "--score", "2", dsn=dsn)
    assert bad_score.exit_code == 2
    down = run("list", dsn="host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2")
    assert down.exit_code == 1
    assert str(down.exception).startswith("postgresql at FRAUDGRAPH_POSTGRES_DSN cannot be "
                                          "reached (")
    assert str(down.exception).endswith("); run `fraudgraph stack up`")
    assert store.counts()["blocklist"] == 0


def test_cli_on_the_default_database(stack: Settings, unique: str) -> None:
    ip = f"198.51.100.{unique}"
    store = connect.blocklist(stack)
    try:
        assert run("add", "ip", ip, "--reason", "scanner").exit_code == 0
        entry = store.get("ip", ip)
        assert entry is not None and (entry.source, entry.expires_at) == ("manual", None)
        assert run("remove", "ip", ip).exit_code == 0
        assert actions(store, "ip", ip) == ["add", "revoke"]
    finally:
        query(store, "DELETE FROM blocklist WHERE entity_type = 'ip' AND entity_id = %s", ip)
        query(store, "DELETE FROM blocklist_history WHERE entity_type = 'ip' AND entity_id = %s",
              ip)
        store.close()


def test_cli_add_and_remove_set_and_clear_the_graph_mark(store: BlocklistStore, dsn: str,
                                                         stack: Settings, unique: str) -> None:
    """The Browser and the detectors' proximity checks read the node's blocked mark: a
    manual entry sets it, a revocation clears it (confirmed fraud stays), and a second
    `remove` clears a mark left behind while Neo4j was away."""
    card = f"c-{unique}"
    driver = connect.neo4j(stack)

    def node() -> dict[str, Any]:
        records, _, _ = driver.execute_query(
            "MATCH (c:Card {id: $id}) RETURN labels(c) AS labels, c.blocked AS blocked, "
            "c.blocked_reason AS reason, c.blocked_source AS source, "
            "c.fraud_confirmed_ms AS fraud", id=card)
        return dict(records[0])

    try:
        driver.execute_query("CREATE (:Card {id: $id, fraud_confirmed_ms: 5})", id=card)
        assert run("add", "card", card, "--reason", "stolen", dsn=dsn).exit_code == 0
        assert node() == {"labels": ["Card", "Blocked"], "blocked": True, "reason": "stolen",
                          "source": "manual", "fraud": 5}
        removed = run("remove", "card", card, dsn=dsn)
        assert removed.exit_code == 0 and f"revoked card {card}" in removed.output
        assert node() == {"labels": ["Card"], "blocked": None, "reason": None, "source": None,
                          "fraud": 5}
        detect.mark_blocked(driver, [("card", card, "stolen", "manual")])  # left behind
        again = run("remove", "card", card, dsn=dsn)
        assert again.exit_code == 0 and "cleared the blocked mark" in again.output
        assert node()["labels"] == ["Card"] and node()["blocked"] is None
        assert actions(store, "card", card) == ["add", "revoke"]
        assert run("remove", "card", card, dsn=dsn).exit_code == 1  # nothing left to do
    finally:
        driver.execute_query("MATCH (c:Card {id: $id}) DETACH DELETE c", id=card)
        driver.close()


def test_cli_add_marks_the_node_with_the_entry_the_store_kept(
        store: BlocklistStore, dsn: str, stack: Settings, unique: str) -> None:
    """A manual add over an active entry that counts earlier keeps that entry: the node's
    mark shows what the store kept, not what was asked."""
    fresh, earlier = f"c1-{unique}", f"c2-{unique}"
    driver = connect.neo4j(stack)

    def mark(card: str) -> tuple[Any, Any, Any]:
        records, _, _ = driver.execute_query(
            "MATCH (c:Card {id: $id}) RETURN c.blocked AS b, c.blocked_reason AS r, "
            "c.blocked_source AS s", id=card)
        return records[0]["b"], records[0]["r"], records[0]["s"]

    try:
        driver.execute_query("UNWIND $ids AS id CREATE (:Card {id: id})", ids=[fresh, earlier])
        added = run("add", "card", fresh, "--reason", "stolen", dsn=dsn)
        assert added.exit_code == 0 and f"blocklisted card {fresh} (expires never)" in added.output
        assert mark(fresh) == (True, "stolen", "manual")
        # counts from always with the top score: the person's entry changes nothing
        store.upsert([NewEntry("card", earlier, "velocity", "rule", 1.0, {})], "t")
        again = run("add", "card", earlier, "--reason", "mine", dsn=dsn)
        assert again.exit_code == 0 and "is already blocklisted with score 1.00" in again.output
        assert mark(earlier) == (True, "velocity", "rule")
    finally:
        driver.execute_query("MATCH (c:Card) WHERE c.id IN $ids DETACH DELETE c",
                             ids=[fresh, earlier])
        driver.close()


def test_cli_add_and_remove_without_neo4j_change_the_blocklist_and_warn(
        store: BlocklistStore, dsn: str, unique: str) -> None:
    with socket.socket() as s:  # a port nothing listens on: Neo4j is away
        s.bind(("127.0.0.1", 0))
        away = f"bolt://127.0.0.1:{s.getsockname()[1]}"
    card = f"c-{unique}"
    added = run("add", "card", card, "--reason", "stolen", dsn=dsn, FRAUDGRAPH_NEO4J_URI=away)
    assert added.exit_code == 0, added.output
    assert "warning: the graph mark is not updated" in added.output
    assert f"blocklisted card {card}" in added.output and store.get("card", card) is not None
    removed = run("remove", "card", card, dsn=dsn, FRAUDGRAPH_NEO4J_URI=away)
    assert removed.exit_code == 0, removed.output
    assert "warning: the graph mark is not updated" in removed.output
    assert f"revoked card {card}" in removed.output
