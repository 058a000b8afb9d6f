"""`fraudgraph query list | show | run`: the Cypher library from the command line."""

from __future__ import annotations

import csv
import difflib
import io
import json
from typing import Any

import click
from rich.markup import escape

import cypher
from fraudgraph import connect
from fraudgraph.errors import FraudgraphError
from fraudgraph.ui import env_epilog, out, settings_from, table

QUERY_ENV = env_epilog("FRAUDGRAPH_NEO4J_URI", "FRAUDGRAPH_NEO4J_USER",
                       "FRAUDGRAPH_NEO4J_PASSWORD")


@click.group(epilog=QUERY_ENV)
def query() -> None:
    """The Cypher query library: named, documented, parameterised queries.

    The same files serve the detectors and analysts (cypher/*.cypher); `run`
    executes read queries only.
    """


@query.command("list", epilog=QUERY_ENV)
@click.option("--all", "show_all", is_flag=True,
              help="Also the write queries the projection and detectors use.")
def list_(show_all: bool) -> None:
    """Name, parameters and purpose of every query."""
    queries = [cypher.query(name) for name in cypher.names()]
    out.print(table("cypher library", ["name", "parameters", "purpose"], [
        [q.name, ", ".join(p.name + ("" if p.default is None else f"={p.default}")
                           for p in q.params) or "-", escape(q.purpose)]
        for q in queries if show_all or not q.writes]))


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
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
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
    columns = [column for column, _ in q.returns]
    rows = [{c: r.get(c) for c in columns} for r in records]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: _cell(v) for c, v in row.items()} for row in rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        out.print(table(f"{name} ({len(rows)} rows)", columns,
                        [[escape(_cell(row[c])) for c in columns] for row in rows]))


def _cell(value: Any) -> str:
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
