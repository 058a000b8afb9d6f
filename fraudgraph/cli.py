"""The `fraudgraph` command line.

Every command has ``--help``; errors the user can act on are printed as one
line (``error: ...``) with exit status 1, never as a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import click
from rich.markup import escape
from rich.text import Text

from fraudgraph import __version__
from fraudgraph.errors import FraudgraphError
from fraudgraph.settings import load_settings
from fraudgraph.ui import FORMAT, Column, emit, env_epilog, err, notes, out, report, settings_from
from ingest import kafka

STACK_ENV = env_epilog("FRAUDGRAPH_PROFILE", "FRAUDGRAPH_DATA_DIR", "FRAUDGRAPH_CACHE_DIR",
                       "FRAUDGRAPH_JAVA_HOME", "FRAUDGRAPH_KAFKA", "FRAUDGRAPH_NEO4J",
                       "FRAUDGRAPH_POSTGRES")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=env_epilog("FRAUDGRAPH_PROFILE", "FRAUDGRAPH_DATA_DIR"))
@click.version_option(__version__, prog_name="fraudgraph")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """fraudgraph: a graph-analytics fraud engine for card transactions.

    Kafka streams card transactions into a Neo4j graph; rules, Cypher
    detectors and a GNN score them; decisions go to Kafka and flagged
    entities to a PostgreSQL blocklist.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = load_settings()
    kafka.use_security(ctx.obj.kafka.client_security())  # every Kafka client of the command


@cli.group(epilog=STACK_ENV)
def stack() -> None:
    """Run the local stack: real Kafka, Neo4j and PostgreSQL, no Docker.

    Kafka 3.9 (KRaft) and Neo4j 5.26 Community run from jars fetched once from
    Maven Central; PostgreSQL is a private cluster from the OS packages. All
    state lives in the data folder; secrets are generated into
    <data_dir>/secrets.env (mode 0600) in the dev profile.
    """


@stack.command(epilog=STACK_ENV)
@click.pass_context
def up(ctx: click.Context) -> None:
    """Start the services that are not running and wait until each answers.

    Idempotent: on a running stack it returns quickly and changes nothing.
    """
    from fraudgraph.stack import manager

    started = time.monotonic()
    _, statuses = manager.up(settings_from(ctx), report)
    print_status(statuses)
    out.print(f"stack up in {time.monotonic() - started:.1f}s")


@stack.command(epilog=STACK_ENV)
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the processes the stack started (by PID). Data stays in place."""
    from fraudgraph.stack import manager

    manager.down(settings_from(ctx), report)


@stack.command(epilog=STACK_ENV)
@click.option("--check", is_flag=True,
              help="Print nothing; exit 0 only if every service is healthy.")
@FORMAT
@click.pass_context
def status(ctx: click.Context, check: bool, fmt: str) -> None:
    """Show each service's port, PID and health."""
    from fraudgraph.stack import manager

    statuses = manager.status(settings_from(ctx))
    healthy = all(s.health == "healthy" for s in statuses)
    if check:
        sys.exit(0 if healthy else 1)
    print_status(statuses, fmt)
    if not healthy:
        notes(fmt).print("some services are not healthy: `fraudgraph stack up` starts them; "
                         "`fraudgraph stack logs SERVICE` shows why one failed")


@stack.command(epilog=STACK_ENV)
@click.argument("service", type=click.Choice(["kafka", "neo4j", "postgres"]))
@click.option("-n", "--lines", default=40, show_default=True, help="How many lines to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@click.pass_context
def logs(ctx: click.Context, service: str, lines: int, follow: bool) -> None:
    """Show the end of a service's log (<data_dir>/logs/SERVICE.log)."""
    from fraudgraph.stack import process

    path = settings_from(ctx).data_dir / "logs" / f"{service}.log"
    if not path.exists():
        raise FraudgraphError(f"no log for {service} yet ({path}): start it with "
                              "`fraudgraph stack up`")
    for line in process.tail(path, lines):
        click.echo(line)
    if follow:
        with open(path, errors="replace") as handle:
            handle.seek(0, 2)
            while True:
                line = handle.readline()
                if line:
                    click.echo(line, nl=False)
                else:
                    time.sleep(0.3)


SMOKE_COLUMNS = [Column("service"), Column("result"),
                 Column("time_ms", lambda ms: f"{ms:.0f} ms", header="time")]


@cli.command(epilog=env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_NEO4J_URI",
                               "FRAUDGRAPH_POSTGRES_DSN"))
@FORMAT
@click.pass_context
def smoke(ctx: click.Context, fmt: str) -> None:
    """Round trip through Kafka, Neo4j and PostgreSQL and report each."""
    from fraudgraph import smoke as smoke_checks

    checks = smoke_checks.run(settings_from(ctx))
    emit([[c.service, c.detail, c.seconds * 1000] for c in checks], SMOKE_COLUMNS, fmt,
         "smoke round trip")


HEALTH_COLOURS = {"healthy": "green", "unhealthy": "red", "stopped": "yellow"}
STATUS_COLUMNS = [
    Column("service"), Column("ports"), Column("pid"),
    Column("health", lambda health: Text(health, style=HEALTH_COLOURS.get(health, "white"))),
    Column("detail")]


def print_status(statuses: list[Any], fmt: str = "table") -> None:
    """One row per service (`stack status`, and `stack up` once the stack answers)."""
    emit([[s.name, s.ports, s.pid, s.health, s.detail] for s in statuses], STATUS_COLUMNS, fmt,
         "fraudgraph stack")


def _register_subcommands() -> None:
    from fraudgraph import (
        backtest_cli,
        bench_cli,
        blocklist_cli,
        browser_cli,
        detector_cli,
        evaluate_cli,
        gnn_cli,
        graph_cli,
        ingest_cli,
        model_cli,
        project_cli,
        query_cli,
        scale_out_cli,
    )

    cli.add_command(ingest_cli.generate)
    cli.add_command(ingest_cli.produce)
    cli.add_command(ingest_cli.bench_decode)
    cli.add_command(project_cli.project)
    cli.add_command(graph_cli.graph)
    cli.add_command(project_cli.bench_projection)
    cli.add_command(detector_cli.run)
    cli.add_command(bench_cli.bench)
    cli.add_command(scale_out_cli.bench_scale_out)
    cli.add_command(model_cli.model)
    cli.add_command(evaluate_cli.evaluate)
    cli.add_command(backtest_cli.backtest)
    cli.add_command(blocklist_cli.blocklist)
    cli.add_command(query_cli.query)
    cli.add_command(gnn_cli.gnn)
    cli.add_command(browser_cli.browser)


_register_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors, no tracebacks for known failures."""
    try:
        cli.main(args=argv, prog_name="fraudgraph", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        err.print(f"[red]error:[/red] {escape(exc.format_message())}{hint}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        err.print(f"[red]error:[/red] {escape(exc.format_message())}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except FraudgraphError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line by default, the traceback with --verbose
        args = sys.argv[1:] if argv is None else argv
        if "-v" in args or "--verbose" in args:
            raise
        err.print(f"[red]error:[/red] unexpected {type(exc).__name__}: {escape(str(exc))} "
                  "(rerun with --verbose for the traceback)", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
