"""`fraudgraph graph init | prune | stats | clear`: the Neo4j graph's schema, retention
and counts (`fraudgraph project` fills it: :mod:`fraudgraph.project_cli`)."""

from __future__ import annotations

import time

import click

import cypher
from fraudgraph import connect
from fraudgraph.settings import Settings
from fraudgraph.ui import DURATION, FORMAT, Column, emit, env_epilog, out, settings_from
from graph.projection import GraphWriter, clear_graph
from ingest.transaction import DecodeError, parse_event_ms

GRAPH_ENV = env_epilog("FRAUDGRAPH_NEO4J_URI", "FRAUDGRAPH_NEO4J_USER",
                       "FRAUDGRAPH_NEO4J_PASSWORD")


def writer_for(settings: Settings) -> GraphWriter:
    return GraphWriter(connect.neo4j(settings))


@click.group(epilog=GRAPH_ENV)
def graph() -> None:
    """Manage the Neo4j graph: schema, retention, counts."""


@graph.command(epilog=GRAPH_ENV)
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the graph's constraints and indexes (idempotent)."""
    writer = writer_for(settings_from(ctx))
    try:
        count = writer.apply_schema()
    finally:
        writer.driver.close()
    out.print(f"schema applied: {count} constraints and indexes")


@graph.command(epilog=GRAPH_ENV)
@click.option("--retention", type=DURATION, default="30d", show_default=True,
              help="Keep transaction detail this long before --as-of.")
@click.option("--as-of", "as_of", metavar="TIME",
              help="The retention clock (ISO 8601 with a zone); default now (wall clock). "
                   "Never the newest event in the graph: one transaction dated far ahead "
                   "would delete every detail.")
@click.pass_context
def prune(ctx: click.Context, retention: int, as_of: str | None) -> None:
    """Delete transaction detail older than the retention window (aggregates stay)."""
    now_ms = int(time.time() * 1000)
    if as_of is not None:
        try:
            now_ms = parse_event_ms(as_of)
        except DecodeError as exc:
            raise click.BadParameter(f"{exc.detail} (e.g. 2026-01-31T00:00:00Z)",
                                     param_hint="--as-of") from None
    writer = writer_for(settings_from(ctx))
    try:
        deleted = writer.prune(retention, now_ms)
    finally:
        writer.driver.close()
    out.print(f"pruned {deleted:,} transaction detail nodes")


STATS_COLUMNS = [Column("kind"), Column("name", justify="right"),
                 Column("count", lambda n: f"{n:,}", "right")]


@graph.command(epilog=GRAPH_ENV)
@FORMAT
@click.pass_context
def stats(ctx: click.Context, fmt: str) -> None:
    """Count nodes per label and relationships per type."""
    writer = writer_for(settings_from(ctx))
    try:
        records, _, _ = writer.driver.execute_query(cypher.load("graph_counts"))
    finally:
        writer.driver.close()
    emit([[r["kind"], r["name"], r["count"]] for r in records], STATS_COLUMNS, fmt, "graph")


@graph.command(epilog=GRAPH_ENV)
@click.option("--yes", is_flag=True, help="Do not ask before emptying the graph.")
@click.pass_context
def clear(ctx: click.Context, yes: bool) -> None:
    """Empty the graph (every node and relationship; the schema stays). No undo."""
    if not yes:
        click.confirm("This empties the Neo4j graph. Continue?", abort=True)
    writer = writer_for(settings_from(ctx))
    try:
        deleted = clear_graph(writer.driver)
    finally:
        writer.driver.close()
    out.print(f"graph emptied: {deleted:,} nodes deleted")
