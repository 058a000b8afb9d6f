"""`fraudgraph blocklist list | add | remove | show`: the PostgreSQL blocklist by hand.

`add` and `remove` also set or clear the node's blocked mark in Neo4j (the
:Blocked label the Browser shows and the ``blocked`` property the detectors'
proximity checks read), through :class:`fraudgraph.blocking.Blocker` as every writer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from rich.markup import escape

from detectors.blocklist import ENTITY_TYPES, SOURCES, Entry, NewEntry
from fraudgraph import connect
from fraudgraph.blocking import Blocker
from fraudgraph.errors import FraudgraphError, ServiceUnavailable
from fraudgraph.settings import Settings
from fraudgraph.ui import DURATION, FORMAT, Column, emit, env_epilog, out, settings_from

BLOCKLIST_ENV = env_epilog("FRAUDGRAPH_POSTGRES")
CHANGE_ENV = env_epilog("FRAUDGRAPH_POSTGRES", "FRAUDGRAPH_NEO4J")
ENTITY_TYPE = click.Choice(ENTITY_TYPES)


def actor() -> str:
    """Who runs the command, for the history table."""
    return os.environ.get("USER") or "cli"


def when(value: datetime | None, never: str = "-") -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else never


def until(value: datetime | None) -> str:
    return when(value, "never")


def score_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def status(entry: Entry) -> str:
    if entry.revoked_at is not None:
        return "revoked"
    return "active" if entry.active_at(datetime.now(UTC)) else "expired"


LIST_COLUMNS = [Column("type"), Column("id"), Column("status"), Column("source"),
                Column("score", score_text, "right"), Column("reason"), Column("updated", when),
                Column("expires", until)]
FIELD_COLUMNS = [Column("field"), Column("value")]
HISTORY_COLUMNS = [Column("at", when), Column("action"), Column("actor"), Column("source"),
                   Column("score", score_text, "right"), Column("reason", lambda r: r or "-"),
                   Column("expires", until)]


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
@FORMAT
@click.pass_context
def list_entries(ctx: click.Context, entity_type: str | None, source: str | None,
                 include_inactive: bool, limit: int, fmt: str) -> None:
    """List blocklist entries, most recently updated first."""
    with connect.blocklist(settings_from(ctx)) as store:
        entries = store.list(entity_type, source, include_inactive, limit)
    emit([[e.entity_type, e.entity_id, status(e), e.source, e.score, e.reason, e.updated_at,
           e.expires_at] for e in entries], LIST_COLUMNS, fmt,
         f"blocklist ({len(entries)} shown)")


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
    with connect.blocklist(settings) as store, _graph(settings) as driver:
        blocker = Blocker(store, driver)
        changed = blocker.block([entry], actor())
        stored = store.get(entity_type, entity_id)
        assert stored is not None
        if (stored.reason, stored.source) != (entry.reason, entry.source):
            blocker.mark([_as_new(stored)])  # the node shows the entry the upsert kept
    if changed:
        out.print(f"blocklisted {entity_type} {entity_id} "
                  f"(expires {until(stored.expires_at)})")
    else:
        out.print(f"{entity_type} {entity_id} is already blocklisted with score "
                  f"{stored.score:.2f}, expiring {until(stored.expires_at)}: unchanged")


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
    with connect.blocklist(settings) as store, _graph(settings) as driver:
        revoked, unmarked = Blocker(store, driver).unblock(entity_type, entity_id, actor(),
                                                           reason)
    if revoked:
        out.print(f"revoked {entity_type} {entity_id}")
    elif unmarked:
        out.print(f"{entity_type} {entity_id} was revoked already: cleared the blocked mark "
                  "its graph node still had")
    else:
        raise FraudgraphError(f"{entity_type} {entity_id} has no active blocklist entry "
                              "(see `fraudgraph blocklist list --all`)")


@contextmanager
def _graph(settings: Settings) -> Iterator[Any]:
    """The Neo4j driver the blocked marks are written with; None on a Neo4j outage, with a
    warning that the mark is not updated (the blocklist, the source of truth, still is)."""
    try:
        driver = connect.neo4j(settings, retry_seconds=3.0)
    except ServiceUnavailable as exc:
        out.print(f"[yellow]warning:[/] the graph mark is not updated: {escape(str(exc))}; "
                  "run the command again when Neo4j is up")
        yield None
        return
    try:
        yield driver
    finally:
        driver.close()


def _as_new(entry: Entry) -> NewEntry:
    return NewEntry(entry.entity_type, entry.entity_id, entry.reason, entry.source,
                    entry.score, entry.evidence)


@blocklist.command(epilog=BLOCKLIST_ENV)
@click.argument("entity_type", metavar="TYPE", type=ENTITY_TYPE)
@click.argument("entity_id", metavar="ID")
@FORMAT
@click.pass_context
def show(ctx: click.Context, entity_type: str, entity_id: str, fmt: str) -> None:
    """Show the entry for TYPE ID and every change recorded for it.

    With --format json or csv: the changes alone, one row each (`blocklist list --all`
    has the entries)."""
    with connect.blocklist(settings_from(ctx)) as store:
        entry = store.get(entity_type, entity_id)
        changes = store.history(entity_type, entity_id)
    if entry is None:
        raise FraudgraphError(f"{entity_type} {entity_id} has never been on the blocklist")
    if fmt == "table":
        emit([["status", status(entry)], ["reason", entry.reason], ["source", entry.source],
              ["score", score_text(entry.score)], ["evidence", str(entry.evidence)],
              ["created", when(entry.created_at)], ["updated", when(entry.updated_at)],
              ["expires", until(entry.expires_at)], ["revoked", when(entry.revoked_at)],
              ["revoked by", entry.revoked_by or "-"]], FIELD_COLUMNS, fmt,
             f"{entity_type} {entity_id}")
    emit([[c["at"], c["action"], c["actor"], c["source"], c["score"], c["reason"],
           c["expires_at"]] for c in changes], HISTORY_COLUMNS, fmt, "history")
