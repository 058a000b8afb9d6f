"""`fraudgraph blocklist list | add | remove | show`: the PostgreSQL blocklist by hand.

`add` and `remove` also set or clear the node's blocked mark in Neo4j (the
:Blocked label the Browser shows and the ``blocked`` property the detectors'
proximity checks read), as the daemon does for the entries it makes."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from detectors.blocklist import ENTITY_TYPES, SOURCES, Entry, NewEntry
from fraudgraph import connect
from fraudgraph.errors import FraudgraphError, ServiceUnavailable
from fraudgraph.settings import Settings
from fraudgraph.ui import DURATION, env_epilog, out, settings_from
from graph import detect

BLOCKLIST_ENV = env_epilog("FRAUDGRAPH_POSTGRES")
CHANGE_ENV = env_epilog("FRAUDGRAPH_POSTGRES", "FRAUDGRAPH_NEO4J")
ENTITY_TYPE = click.Choice(ENTITY_TYPES)


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """Text columns left-aligned, the score column right-aligned."""
    result = Table(title=escape(title))
    for column in columns:
        result.add_column(column, justify="right" if column == "score" else "left")
    for row in rows:
        result.add_row(*[escape(cell) for cell in row])
    return result


def actor() -> str:
    """Who runs the command, for the history table."""
    return os.environ.get("USER") or "cli"


def when(value: datetime | None, never: str = "-") -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else never


def status(entry: Entry) -> str:
    if entry.revoked_at is not None:
        return "revoked"
    return "active" if entry.active_at(datetime.now(UTC)) else "expired"


@click.group(epilog=BLOCKLIST_ENV)
def blocklist() -> None:
    """Inspect and edit the PostgreSQL blocklist (entities the stream blocks).

    Every change is an idempotent upsert and is recorded in the history table.
    """


@blocklist.command("list", epilog=BLOCKLIST_ENV)
@click.option("--type", "entity_type", type=ENTITY_TYPE, help="Only this entity type.")
@click.option("--source", type=click.Choice(SOURCES), help="Only entries from this source.")
@click.option("--all", "include_inactive", is_flag=True,
              help="Include revoked and expired entries.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Show at most this many (most recently updated first).")
@click.pass_context
def list_entries(ctx: click.Context, entity_type: str | None, source: str | None,
                 include_inactive: bool, limit: int) -> None:
    """List blocklist entries, most recently updated first."""
    with connect.blocklist(settings_from(ctx)) as store:
        entries = store.list(entity_type, source, include_inactive, limit)
    out.print(table(f"blocklist ({len(entries)} shown)",
                    ["type", "id", "status", "source", "score", "reason", "updated", "expires"],
                    [[e.entity_type, e.entity_id, status(e), e.source, f"{e.score:.2f}",
                      e.reason, when(e.updated_at), when(e.expires_at, "never")]
                     for e in entries]))


@blocklist.command(epilog=CHANGE_ENV)
@click.argument("entity_type", metavar="TYPE", type=ENTITY_TYPE)
@click.argument("entity_id", metavar="ID")
@click.option("--reason", required=True, help="Why the entity is blocked (kept in history).")
@click.option("--ttl", type=DURATION, help="Expire after this long (e.g. 6h, 30d); default never.")
@click.option("--score", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Risk score, 0 to 1.")
@click.pass_context
def add(ctx: click.Context, entity_type: str, entity_id: str, reason: str, ttl: int | None,
        score: float) -> None:
    """Put TYPE ID on the blocklist (source 'manual'); re-activates a revoked entry.

    The graph node, when there is one, is marked blocked as well."""
    ttl_seconds = None if ttl is None else max(1, round(ttl / 1000))
    entry = NewEntry(entity_type, entity_id, reason, "manual", score, {}, ttl_seconds)
    settings = settings_from(ctx)
    with connect.blocklist(settings) as store:
        changed = store.upsert([entry], actor())
        stored = store.get(entity_type, entity_id)
    assert stored is not None
    _on_graph(settings, lambda driver: detect.mark_blocked(
        driver, [(entity_type, entity_id, stored.reason, stored.source)]))
    if changed:
        out.print(f"blocklisted {entity_type} {entity_id} "
                  f"(expires {when(stored.expires_at, 'never')})")
    else:
        out.print(f"{entity_type} {entity_id} is already blocklisted with score "
                  f"{stored.score:.2f}, expiring {when(stored.expires_at, 'never')}: unchanged")


@blocklist.command(epilog=CHANGE_ENV)
@click.argument("entity_type", metavar="TYPE", type=ENTITY_TYPE)
@click.argument("entity_id", metavar="ID")
@click.option("--reason", default="removed by hand", show_default=True,
              help="Why the entry is revoked (kept in history).")
@click.pass_context
def remove(ctx: click.Context, entity_type: str, entity_id: str, reason: str) -> None:
    """Revoke the active entry for TYPE ID (the row and its history stay).

    The graph node loses its blocked mark (its confirmed fraud, if any, stays).
    Run it again if Neo4j was away: it then clears the mark left behind."""
    settings = settings_from(ctx)
    with connect.blocklist(settings) as store:
        revoked = store.revoke(entity_type, entity_id, actor(), reason)
    unmarked = _on_graph(settings, lambda driver: detect.unmark_blocked(
        driver, [(entity_type, entity_id)]))
    if revoked:
        out.print(f"revoked {entity_type} {entity_id}")
    elif unmarked:
        out.print(f"{entity_type} {entity_id} was revoked already: cleared the blocked mark "
                  "its graph node still had")
    else:
        raise FraudgraphError(f"{entity_type} {entity_id} has no active blocklist entry "
                              "(see `fraudgraph blocklist list --all`)")


def _on_graph(settings: Settings, change: Callable[[Any], int | None]) -> int:
    """Apply a blocked-mark change to the graph; on a Neo4j outage warn (the blocklist,
    the source of truth, has changed already) and return 0."""
    try:
        driver = connect.neo4j(settings, retry_seconds=3.0)
    except ServiceUnavailable as exc:
        out.print(f"[yellow]warning:[/] the graph mark is not updated: {escape(str(exc))}; "
                  "run the command again when Neo4j is up")
        return 0
    try:
        return change(driver) or 0
    finally:
        driver.close()


@blocklist.command(epilog=BLOCKLIST_ENV)
@click.argument("entity_type", metavar="TYPE", type=ENTITY_TYPE)
@click.argument("entity_id", metavar="ID")
@click.pass_context
def show(ctx: click.Context, entity_type: str, entity_id: str) -> None:
    """Show the entry for TYPE ID and every change recorded for it."""
    with connect.blocklist(settings_from(ctx)) as store:
        entry = store.get(entity_type, entity_id)
        changes = store.history(entity_type, entity_id)
    if entry is None:
        raise FraudgraphError(f"{entity_type} {entity_id} has never been on the blocklist")
    out.print(table(f"{entity_type} {entity_id}", ["field", "value"], [
        ["status", status(entry)], ["reason", entry.reason], ["source", entry.source],
        ["score", f"{entry.score:.2f}"], ["evidence", str(entry.evidence)],
        ["created", when(entry.created_at)], ["updated", when(entry.updated_at)],
        ["expires", when(entry.expires_at, "never")], ["revoked", when(entry.revoked_at)],
        ["revoked by", entry.revoked_by or "-"]]))
    out.print(table("history", ["at", "action", "actor", "source", "score", "reason", "expires"],
                    [[when(c["at"]), c["action"], c["actor"], c["source"] or "-",
                      "-" if c["score"] is None else f"{c['score']:.2f}", c["reason"] or "-",
                      when(c["expires_at"], "never")] for c in changes]))
