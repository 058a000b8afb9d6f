"""`fraudgraph query list | show | run`: the Cypher library from the command line."""

from __future__ import annotations

import difflib
from typing import Any

import click

import cypher
from fraudgraph import connect
from fraudgraph.errors import FraudgraphError
from fraudgraph.ui import FORMAT, Column, emit, env_epilog, settings_from

QUERY_ENV = env_epilog("FRAUDGRAPH_NEO4J_URI", "FRAUDGRAPH_NEO4J_USER",
                       "FRAUDGRAPH_NEO4J_PASSWORD")


@click.group(epilog=QUERY_ENV)
def query() -> None:
    """The Cypher query library: named, documented, parameterised queries.

    The same files serve the detectors and analysts (cypher/*.cypher); `run`
    executes read queries only.
    """


LIBRARY_COLUMNS = [Column("name"), Column("parameters", lambda p: ", ".join(p) or "-",
                                            justify="right"),
                   Column("purpose", justify="right")]


@query.command("list", epilog=QUERY_ENV)
@click.option("--all", "show_all", is_flag=True,
              help="Also the write queries the projection and detectors use.")
@FORMAT
def list_(show_all: bool, fmt: str) -> None:
    """Name, parameters and purpose of every query."""
    queries = [cypher.query(name) for name in cypher.names()]
    emit([[q.name, [p.name + ("" if p.default is None else f"={p.default}") for p in q.params],
           q.purpose] for q in queries if show_all or not q.writes],
         LIBRARY_COLUMNS, fmt, "cypher library")


@query.command(epilog=QUERY_ENV)
@click.argument("name")
def show(name: str) -> None:
    """The header and text of one query."""
    q = _find(name)
    click.echo(f"name:    {q.name}\npurpose: {q.purpose}")
    for p in q.params:
        default = "" if p.default is None else f" (default {p.default})"
        click.echo(f"param:   {p.name}: {p.type}{default}")
    for column, kind in q.returns:
        click.echo(f"returns: {column}: {kind}")
    click.echo("\n" + q.body)


@query.command(epilog=QUERY_ENV)
@click.argument("name")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A parameter (repeatable); lists and maps as JSON.")
@FORMAT
@click.pass_context
def run(ctx: click.Context, name: str, params: tuple[str, ...], fmt: str) -> None:
    """Run a read query of the library and print its rows."""
    q = _find(name)
    if q.writes:
        raise FraudgraphError(f"{name} changes the graph (the projection and detectors use it); "
                              "`fraudgraph query run` runs read queries only")
    given = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise FraudgraphError(f"--param {item!r} is not KEY=VALUE")
        given[key.strip()] = value
    try:
        bound = cypher.bind(q, given)
    except cypher.ParamError as exc:
        raise FraudgraphError(str(exc)) from None
    driver = connect.neo4j(settings_from(ctx))
    try:
        records, _, _ = driver.execute_query(cypher.load(name), bound, routing_="r")
    finally:
        driver.close()
    names = [column for column, _ in q.returns]
    columns = [Column(c, _cell, "right" if i else "left") for i, c in enumerate(names)]
    emit([[r.get(c) for c in names] for r in records], columns, fmt,
         f"{name} ({len(records)} rows)")


def _cell(value: Any) -> str:
    """A table cell of a query's result: nothing for null, a list's items by commas."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _find(name: str) -> cypher.Query:
    names = cypher.names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `fraudgraph query list`"
        raise FraudgraphError(f"no query named {name!r}{hint}")
    return cypher.query(name)
