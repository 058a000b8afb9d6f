"""`fraudgraph project` and `fraudgraph bench-projection`: the transactions topic into
the Neo4j graph, and how fast that goes."""

from __future__ import annotations

import click

from fraudgraph.ingest_cli import decoder_config
from fraudgraph.stream import projector
from fraudgraph.ui import (
    DURATION,
    FORMAT,
    Column,
    emit,
    env_epilog,
    out,
    progress_bar,
    reporter,
    settings_from,
    table,
)
from graph.projection import OPTIONAL_PARTS

#: One batch is one Neo4j transaction: 20,000 rows exceeded the stack's 256 MiB
#: transaction memory limit (dbms.memory.transaction.total.max); 10,000 fit and
#: were the fastest measured.
MAX_BATCH = 10_000
PROJECTION_ENV = env_epilog("FRAUDGRAPH_NEO4J_URI", "FRAUDGRAPH_NEO4J_USER",
                            "FRAUDGRAPH_NEO4J_PASSWORD")


@click.command(epilog=env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_TOPIC_TRANSACTIONS",
                                 "FRAUDGRAPH_TOPIC_DLQ", "FRAUDGRAPH_NEO4J_URI"))
@click.option("--group", default="fraudgraph-projection", show_default=True,
              help="Kafka consumer group (run several processes to share partitions).")
@click.option("--batch-size", type=click.IntRange(min=1, max=MAX_BATCH), default=10_000,
              show_default=True,
              help="Messages per micro-batch (one Neo4j transaction each).")
@click.option("--from-beginning", is_flag=True,
              help="Re-read the topic from the start (harmless: the projection is idempotent).")
@click.option("--until-idle", type=DURATION,
              help="Stop once no message arrived for this long (e.g. 5s).")
@click.option("--retention", type=DURATION, default="30d", show_default=True,
              help="Keep transaction detail this long (event time); aggregates stay.")
@click.option("--metrics-port", type=int, default=9109, show_default=True,
              help="Serve Prometheus metrics on 127.0.0.1:PORT (0: off).")
@click.pass_context
def project(ctx: click.Context, group: str, batch_size: int, from_beginning: bool,
            until_idle: int | None, retention: int, metrics_port: int) -> None:
    """Project the transactions topic into the Neo4j graph, in micro-batches.

    Runs until Ctrl-C / SIGTERM (or --until-idle). Offsets are committed only
    after the batch's Neo4j transaction commits; replays change nothing.
    """
    settings = settings_from(ctx)
    options = projector.ProjectorOptions(
        group=group, batch_size=batch_size, from_beginning=from_beginning,
        until_idle=until_idle / 1000 if until_idle is not None else None,
        retention_ms=retention, metrics_port=metrics_port)
    with progress_bar("projecting", None) as advance:
        stats = projector.run(settings, options, decoder_config(settings), advance)
    rate = stats.projected / stats.write_seconds if stats.write_seconds else 0.0
    out.print(table("projection", ["", "count"], [
        ["messages consumed", f"{stats.consumed:,}"],
        ["transactions projected", f"{stats.projected:,}"],
        ["duplicates skipped", f"{stats.duplicates:,}"],
        ["rejected to the DLQ", f"{stats.rejected:,}"],
        ["relationship upserts", f"{stats.relationship_rows:,}"],
        ["batches", f"{stats.batches:,}"],
        ["detail pruned", f"{stats.pruned:,}"],
        ["transaction detail written", "every transaction" if settings.neo4j.detail == "all"
         else "none (FRAUDGRAPH_GRAPH_DETAIL=flagged: the daemon writes flagged ones)"],
        ["Neo4j write rate", f"{rate:,.0f} tx/s"],
    ]))


def _count(value: int) -> str:
    return f"{value:,}"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


BENCH_COLUMNS = [
    Column("batch_size", _count, "left", "batch size"),
    Column("transactions", _count, "right"),
    Column("seconds", lambda s: f"{s:.1f}", "right"),
    Column("tx_per_second", _rate, "right", "tx/s"),
    Column("upserts_per_second", _rate, "right", "relationship upserts/s"),
    Column("write_share", lambda share: f"{share:.0%}", "right", "Neo4j write share"),
    Column("neo4j_cpu_us_per_tx", lambda us: "-" if us is None else f"{us:,.0f}", "right",
           "Neo4j CPU µs/tx"),
    Column("part_us_per_tx", lambda parts: ", ".join(f"{k} {v:,.0f}" for k, v in parts.items()),
           "left", "µs per transaction, by part of the write"),
]


@click.command("bench-projection", epilog=PROJECTION_ENV)
@click.option("-n", "--count", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Transactions per run.")
@click.option("--batch-sizes", default="5000", show_default=True,
              help="Comma-separated batch sizes to try, one run each.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask before emptying the graph.")
@click.option("--leave-out", "leave_out", multiple=True, type=click.Choice(OPTIONAL_PARTS),
              help="Do not write this part at all (repeatable): what it costs is the "
                   "difference to a full run. The graph is then incomplete: a measurement only.")
@FORMAT
@click.pass_context
def bench_projection(ctx: click.Context, count: int, batch_sizes: str, seed: int,
                     yes: bool, leave_out: tuple[str, ...], fmt: str) -> None:
    """Measure projection throughput (EMPTIES the Neo4j graph before each run).

    Produces COUNT generated transactions to a fresh topic per batch size and
    projects them; prints transactions/s, relationship upserts/s and the wall
    µs per transaction of each part of the Neo4j writes (known-ids check,
    entities, each aggregate relationship, detail, cursors, commit), and the
    CPU µs per transaction the stack's Neo4j spent meanwhile.
    """
    from fraudgraph import bench_projection as bench

    try:
        sizes = [int(size) for size in batch_sizes.split(",")]
    except ValueError:
        raise click.BadParameter(f"{batch_sizes!r} is not a list of integers",
                                 param_hint="--batch-sizes") from None
    if not all(1 <= size <= MAX_BATCH for size in sizes):
        raise click.BadParameter(f"batch sizes must be 1..{MAX_BATCH:,} (one Neo4j transaction "
                                 "each must fit its memory limit)", param_hint="--batch-sizes")
    if not yes:
        click.confirm("This empties the Neo4j graph of the local stack. Continue?", abort=True,
                      err=fmt != "table")
    settings = settings_from(ctx)
    rows = bench.run(settings, count, sizes, seed, settings.data_dir / "labels", reporter(fmt),
                     leave_out)
    emit([[r.batch_size, r.transactions, r.seconds, r.tx_per_second, r.upserts_per_second,
           r.write_seconds / r.seconds, r.neo4j_cpu_us_per_tx, r.part_us_per_tx]
          for r in rows], BENCH_COLUMNS, fmt,
         f"projection of {count:,} transactions, detail for {settings.neo4j.detail} "
         "(FRAUDGRAPH_GRAPH_DETAIL)")
