"""`fraudgraph bench`: the end-to-end benchmark of the detector daemon on the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fraudgraph.detector_cli import load_config, wait_seconds
from fraudgraph.ui import DURATION, env_epilog, out, settings_from, table

BENCH_ENV = env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_TOPIC", "FRAUDGRAPH_NEO4J",
                       "FRAUDGRAPH_POSTGRES")


@click.command("bench", epilog=BENCH_ENV)
@click.option("-n", "--count", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Transactions to decide.")
@click.option("--rate", type=float, default=0.0, show_default=True,
              help="Offered transactions/second while the daemon runs (0: all up front, "
                   "measuring sustained throughput from a backlog).")
@click.option("--duration", type=DURATION,
              help="With --rate: offer RATE x DURATION transactions (a soak run; memory and "
                   "lag are sampled every 10 s and drawn in a PNG beside --json).")
@click.option("--projection/--no-projection", default=True, show_default=True,
              help="Run the projection consumer beside the daemon, as in production.")
@click.option("--one-at-a-time", "single_count", type=click.IntRange(min=0), default=5_000,
              show_default=True, metavar="N",
              help="Reference: the same detector over the first N messages in batches of "
                   "one (what batching buys; slow); 0: skip.")
@click.option("--peer", type=click.Choice(["quix"]),
              help="Reference: a peer in a maintained streaming library over the same "
                   "input: `quix`, the legacy three rules in Quix Streams (compare with "
                   "--config legacy; installed on first use in its own environment).")
@click.option("--config", "config_ref", default="default", show_default=True,
              help="Detector config: a preset or a TOML file.")
@click.option("--batch-timeout", type=DURATION, default="1ms", show_default=True,
              help="The daemon's longest wait to fill a batch.")
@click.option("--graph-wait", default="60s", show_default=True, metavar="DURATION|forever",
              help="Longest a batch waits for the projection to hold its time (the daemon's "
                   "--graph-wait; its own default is 10s).  Longer here: a freshly started "
                   "Neo4j's first batches can take more than 10 s, and a run whose wait ran "
                   "out partly measures the daemon deciding without the graph's as-of wait "
                   "(the report counts such batches).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/bench.json"), show_default=True,
              help="Where to write the figures as JSON.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--model", "model_count", type=click.IntRange(min=0), default=0,
              show_default=True, metavar="N",
              help="Score with a learned model: first train one on N transactions of "
                   "another seed (decided by the rules, labels from the generator) and "
                   "promote it in the run's registry; 0: the rules decide.")
@click.option("--promote/--no-promote", default=True, show_default=True,
              help="With --model: promote the warm-up's model (the run scores with it), "
                   "or leave it unpromoted so the rules decide on the same warm graph: "
                   "the baseline to compare the model's cost with.")
@click.option("--trace-memory", is_flag=True,
              help="Trace the daemon's allocations (tracemalloc; slower) and report the "
                   "sites that grew most after the first 3 minutes.")
@click.pass_context
def bench(ctx: click.Context, count: int, rate: float, duration: int | None, projection: bool,
          single_count: int, peer: str | None, config_ref: str, batch_timeout: int,
          graph_wait: str, json_path: Path, seed: int, model_count: int, promote: bool,
          trace_memory: bool) -> None:
    """End-to-end benchmark: decisions/s, latency, projection, CPU, references.

    Generates COUNT transactions into fresh topics (deleted afterwards) on the
    running stack and runs the detector daemon (and the projection) over them.
    Then, on the same input, the references: the same detector one message at a
    time, and with --peer the same rules in another streaming library; the
    daemon's throughput is reported as a ratio to each.  The graph is shared; the
    blocklist lives in its own schema for the run.

    \b
    fraudgraph bench                                   # the full engine, from a backlog
    fraudgraph bench --config legacy --no-projection --peer quix
    fraudgraph bench --rate 5000 --duration 100s       # latency at an offered load
    fraudgraph bench --model 80000 --no-promote        # then --model 80000: the model's cost
    """
    import json

    from fraudgraph import bench as bench_run
    from fraudgraph.ui import report

    settings = settings_from(ctx)
    if duration is not None:
        if rate <= 0:
            raise click.UsageError("--duration needs --rate (transactions per second)")
        count = round(rate * duration / 1000)
    result = bench_run.run(settings, load_config(config_ref), count, rate, seed, projection,
                           settings.data_dir / "bench", report, batch_timeout / 1000,
                           single_count, trace_memory, model_count, peer == "quix", promote,
                           graph_wait=wait_seconds(graph_wait))
    figures = result.as_json()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    out.print(table("fraudgraph bench", ["", "value"], _rows(result, count, rate, projection)))
    if result.memory_growth:
        out.print(table("allocations that grew most after the warm-up",
                        ["where", "KB", "blocks"],
                        [[where, f"{kb:,.0f}", f"{blocks:,}"]
                         for where, kb, blocks in result.memory_growth]))
    written = [json_path]
    if len(result.samples) >= 3:
        written.append(bench_run.plot_samples(figures["samples"], json_path.with_suffix(".png")))
    out.print(f"wrote {', '.join(str(p) for p in written)}")


def _rows(result: Any, count: int, rate: float, projection: bool) -> list[list[str]]:
    """The summary table's rows (``result``: ``fraudgraph.bench.BenchResult``)."""
    return [
        ["transactions", f"{count:,}"],
        ["offered rate", f"{rate:,.0f}/s" if rate > 0 else "backlog (as fast as possible)"],
        ["decisions", f"{result.decisions:,} ("
         + ", ".join(f"{d} {n:,}" for d, n in result.outcomes.items()) + ")"],
        ["throughput", f"{result.decisions_per_second:,.0f} decisions/s"],
        *[[f"latency p{q}", f"{result.latency(q):,.1f} ms"] for q in (50, 95, 99)],
        ["stage seconds", ", ".join(f"{k} {v:,.1f}" for k, v in result.stage_seconds.items())],
        ["of graph: waiting for", ", ".join(f"{k} {v:,.1f} s" for k, v in
                                            result.graph_wait_on.items()) or "-"],
        ["batches decided before the graph held their time",
         f"{result.graph_behind:,}" + (" (the wait ran out: fewer graph checks, a faster "
                                       "rate than as of each time)" if result.graph_behind
                                       else "")
         + (f"; waiting at most {result.graph_wait_limit:g} s" if projection
            and result.graph_wait_limit is not None else "")],
        ["learned model", "- (the rules decide)" if result.model_version is None else
         f"{result.model_version}: {result.model_seconds:,.1f} s, "
         f"{result.model_share:.1%} of batch time"],
        ["projection", "off" if not projection else
         f"{result.projection_per_second or 0:,.0f} tx/s, lag "
         f"{result.projection_lag_at_end or 0:,} when the daemon finished, detail for "
         f"{result.graph_detail} transactions"],
        *[[f"CPU s: {k}", f"{v:,.1f}"] for k, v in result.cpu_seconds.items()],
        ["daemon's Neo4j calls (wall s, calls)", ", ".join(
            f"{name} {seconds:,.1f} ({calls:,})" for name, (calls, seconds)
            in sorted(result.neo4j_calls.items(), key=lambda item: -item[1][1])) or "-"],
        ["checkpoints", f"{result.checkpoints} written, the loop stopped at most "
                        f"{result.checkpoint_pause * 1000:,.1f} ms for one"],
        _reference("one at a time (same detector)", result, result.one_at_a_time),
        _reference("Quix Streams peer (legacy rules)", result, result.peer),
        *([["daemon RSS first / max / last",
            " / ".join(f"{v:,.0f} MB" for v in (result.samples[0][1],
                                                max(x[1] for x in result.samples),
                                                result.samples[-1][1]))],
           ["lag max / last", f"{max(x[2] for x in result.samples):,.0f} / "
                              f"{result.samples[-1][2]:,.0f}"]] if result.samples else []),
    ]


def _reference(name: str, result: Any, reference: Any) -> list[str]:
    """A reference's row: its rate, and the daemon's throughput as a ratio to it."""
    if reference is None:
        return [name, "-"]
    ratio = result.ratio_to(reference)
    agreement = ("" if reference.agreement is None else
                 f"; {reference.agreement:.1%} of its decisions equal the daemon's")
    return [name, f"{reference.per_second:,.0f}/s over {reference.messages:,}"
                  + (f"; the daemon: {ratio:,.2f}x" if ratio else "") + agreement]
