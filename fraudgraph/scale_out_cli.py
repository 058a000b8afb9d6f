"""`fraudgraph bench-scale-out`: one daemon and one projector against several of each."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fraudgraph.bench_cli import BENCH_ENV
from fraudgraph.ui import DURATION, out, settings_from, table


def _layout(value: str) -> tuple[int, int]:
    daemons, _, projectors = value.partition("+")
    try:
        layout = int(daemons), int(projectors)
    except ValueError:
        raise click.BadParameter(f"{value!r}: write DAEMONS+PROJECTORS, e.g. 2+2") from None
    if min(layout) < 1:
        raise click.BadParameter(f"{value!r}: at least one daemon and one projector")
    return layout


@click.command("bench-scale-out", epilog=BENCH_ENV)
@click.option("-n", "--count", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Transactions in the stream (the same for every layout).")
@click.option("--rate", type=float, default=500.0, show_default=True,
              help="Offered transactions/second (0: all up front, a backlog).")
@click.option("--duration", type=DURATION, help="With --rate: offer RATE x DURATION.")
@click.option("--layout", "layouts", multiple=True, default=("1+1", "2+2"), show_default=True,
              metavar="DAEMONS+PROJECTORS",
              help="Processes of each consumer group; the first is the one compared with.")
@click.option("--config", "config_ref", default="default", show_default=True,
              help="Detector config of the daemons: a preset or a TOML file.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--warm-up", type=click.IntRange(min=0), default=5000, show_default=True,
              metavar="N", help="First run N transactions of another seed through the first "
                                "layout, unmeasured (a fresh Neo4j is slow at first); 0: none.")
@click.option("--label-delay", type=DURATION,
              help="The generator's label delay (default 3d: most labels come after "
                   "a stream of 20,000 ends); shorter, and more labels reach the daemons "
                   "within the stream.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/scale-out.json"), show_default=True,
              help="Where to write the figures as JSON.")
@click.option("--yes", is_flag=True, help="Do not ask before emptying the graph.")
@click.pass_context
def bench_scale_out(ctx: click.Context, count: int, rate: float, duration: int | None,
                    layouts: tuple[str, ...], config_ref: str, seed: int, warm_up: int,
                    label_delay: int | None, json_path: Path, yes: bool) -> None:
    """Do several daemons and projectors decide like one of each?

    The same generated stream goes through each layout in turn (processes in
    their consumer groups, on the topics' partitions, into an emptied graph);
    then every transaction's decision and reason codes are compared with the
    first layout's.  Prints each layout's throughput and latency, the share of
    transactions decided identically, and the reason codes that differ.

    \b
    fraudgraph bench-scale-out --yes                      # 1+1 against 2+2 at 500/s
    fraudgraph bench-scale-out --rate 0 -n 100000 --yes   # from a backlog
    fraudgraph bench-scale-out --label-delay 12h --yes    # labels within the stream
    """
    from fraudgraph import scale_out
    from fraudgraph.detector_cli import load_config
    from fraudgraph.ui import report

    load_config(config_ref)  # a bad config fails here, not in four processes
    parsed = [scale_out.Layout(*_layout(value)) for value in layouts]
    if duration is not None:
        if rate <= 0:
            raise click.UsageError("--duration needs --rate (transactions per second)")
        count = max(100, round(rate * duration / 1000))
    settings = settings_from(ctx)
    partitions = settings.kafka.partitions
    crowded = [layout.name for layout in parsed
               if max(layout.daemons, layout.projectors) > partitions]
    if crowded:
        raise click.BadParameter(
            f"{', '.join(crowded)}: more processes in a group than the topics' {partitions} "
            f"partitions (one would get none); use at most {partitions} of each, or more "
            f"partitions (FRAUDGRAPH_KAFKA_PARTITIONS)", param_hint="--layout")
    if not yes:
        click.confirm("This empties the Neo4j graph of the local stack before each layout. "
                      "Continue?", abort=True)
    runs, comparisons = scale_out.run(settings, parsed, count, rate, seed,
                                      settings.data_dir / "bench", report, config_ref,
                                      min(warm_up, count), label_delay)
    out.print(table(f"{count:,} transactions, " + (f"offered at {rate:,.0f}/s" if rate > 0
                                                   else "from a backlog"),
                    ["layout", "decided", "records", "decisions/s", "p50 ms", "p99 ms",
                     "identical to " + parsed[0].name],
                    [[r.layout.name, f"{len(r.decisions):,}", f"{r.published:,}",
                      f"{r.per_second:,.0f}", f"{r.latency(50):,.1f}", f"{r.latency(99):,.1f}",
                      "-" if i == 0 else f"{comparisons[i - 1].share:.2%}"]
                     for i, r in enumerate(runs)]))
    for c in comparisons:
        if c.codes:
            out.print(table(f"{c.layout.name}: reason codes that differ from "
                            f"{parsed[0].name}", ["reason code", "transactions"],
                            [[code, f"{n:,}"] for code, n in c.codes.most_common()]))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(scale_out.as_json(count, rate, runs, comparisons,
                                                      label_delay), indent=2) + "\n")
    out.print(f"wrote {json_path}")
