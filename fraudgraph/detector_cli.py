"""`fraudgraph run`: the streaming detector daemon, with a summary when it stops."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from detectors import config as detector_config
from detectors.config import parse_duration_ms
from detectors.decision import DecisionRecord
from detectors.quality import measure, percentile
from fraudgraph import daemon
from fraudgraph.errors import ConfigError
from fraudgraph.ingest_cli import decoder_config
from fraudgraph.settings import require_secret
from fraudgraph.ui import DURATION, EventTime, env_epilog, out, progress_bar, settings_from, table

RUN_ENV = env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_TOPIC", "FRAUDGRAPH_NEO4J",
                     "FRAUDGRAPH_POSTGRES")


class _Truth(msgspec.Struct):
    transaction_id: str
    scenario: str = "fraud"


@click.command(epilog=RUN_ENV)
@click.option("--config", "config_ref", default="default", show_default=True,
              help="Detector config: a preset (default, legacy) or a TOML file.")
@click.option("--group", default="fraudgraph-detector", show_default=True,
              help="Kafka consumer group (run several daemons to share partitions).")
@click.option("--batch-size", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Most messages per micro-batch.")
@click.option("--batch-timeout", type=DURATION, default="1ms", show_default=True,
              help="Longest wait to fill a batch (bounds the latency at low rates).")
@click.option("--from-beginning", is_flag=True,
              help="Re-read the topics from the start (outputs are keyed: replays overwrite).")
@click.option("--until-idle", type=DURATION,
              help="Stop once no message arrived for this long (e.g. 10s).")
@click.option("--metrics-port", type=int, default=9110, show_default=True,
              help="Serve /metrics and /healthz on 127.0.0.1:PORT (0: off).")
@click.option("--no-labels", is_flag=True, help="Do not consume the fraud-labels topic.")
@click.option("--checkpoint-every", type=DURATION, default="30s", show_default=True,
              help="Save the rule state with the input offsets this often (a restart after "
                   "a crash resumes from it); 0: never.")
@click.option("--graph-wait", default="10s", show_default=True, metavar="DURATION|forever",
              help="Longest a batch waits for the graph (projection, labels) to hold its time "
                   "before it is decided on what the graph holds; `forever` for backtests, "
                   "whose decisions then never depend on how far the projection was.")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Ground-truth labels (JSONL from `fraudgraph generate`): print per-scenario "
                   "recall and precision at the end.")
@click.pass_context
def run(ctx: click.Context, config_ref: str, group: str, batch_size: int, batch_timeout: int,
        from_beginning: bool, until_idle: int | None, metrics_port: int, no_labels: bool,
        checkpoint_every: int, graph_wait: str, truth: Path | None) -> None:
    """Run the detector daemon: decide every transaction (allow / review / block).

    Per micro-batch: decode (bad input to the DLQ), check the blocklist, apply
    the streaming rules and the Cypher detectors, publish to the decisions,
    fraud-alerts and training topics, store flagged transactions and entities
    in PostgreSQL, then commit.  Fraud labels and the ring sweep run between
    batches.  Runs until Ctrl-C / SIGTERM (or --until-idle).
    """
    settings = settings_from(ctx)
    require_secret(settings.neo4j.password, "FRAUDGRAPH_NEO4J_PASSWORD")  # before any output
    if settings.postgres.managed:
        require_secret(settings.postgres.password, "FRAUDGRAPH_POSTGRES_PASSWORD")
    config = _config(config_ref)
    options = daemon.DaemonOptions(
        group=group, batch_size=batch_size, batch_timeout=batch_timeout / 1000,
        from_beginning=from_beginning,
        until_idle=until_idle / 1000 if until_idle is not None else None,
        metrics_port=metrics_port, labels=not no_labels, keep_decisions=truth is not None,
        checkpoint_every=checkpoint_every / 1000 if checkpoint_every else None,
        graph_wait=_wait_seconds(graph_wait))
    with progress_bar("deciding", None) as advance:
        stats = daemon.run(settings, config, options, decoder_config(settings), advance)
    seconds = stats.busy_seconds
    decided = sum(stats.outcomes.values())
    out.print(table(f"detector daemon ({config.name})", ["", "value"], [
        ["messages consumed", f"{stats.consumed:,}"],
        ["rejected to the DLQ", f"{stats.rejected:,}"],
        *[[f"decisions: {o}", f"{stats.outcomes[o]:,}"] for o in ("allow", "review", "block")],
        ["entities flagged", f"{stats.flagged_entities:,}"],
        ["labels applied", f"{stats.labels:,}"],
        ["fraud rings (last sweep)", f"{stats.rings:,}"],
        ["waiting for the graph", f"{stats.graph_wait_seconds:.1f} s"
                                  + (f" ({stats.graph_behind:,} batches decided before it "
                                     "caught up)" if stats.graph_behind else "")],
        ["throughput", f"{decided / seconds:,.0f} decisions/s" if seconds else "-"],
        ["latency p50 / p99", f"{percentile(stats.latencies_ms, 50):,.0f} ms / "
                              f"{percentile(stats.latencies_ms, 99):,.0f} ms"],
        *[[f"time in {k}", f"{v:.1f} s"] for k, v in stats.stage_seconds.items()],
    ]))
    if truth is not None:
        decoder = msgspec.json.Decoder(_Truth)
        with open(truth, "rb") as handle:
            labels = {t.transaction_id: t.scenario for t in map(decoder.decode, handle)}
        quality = measure(stats.decisions.items(), labels)
        out.print(table("detection quality against the ground truth",
                        ["scenario", "transactions", "review", "block", "recall"],
                        [[r.scenario, f"{r.transactions:,}", f"{r.reviewed:,}", f"{r.blocked:,}",
                          f"{r.recall:.3f}" if r.scenario != "genuine" else
                          f"({r.recall:.3f} flagged)"] for r in quality.rows]))
        out.print(f"precision: review+block {quality.flagged_precision:.3f}, "
                  f"block {quality.block_precision:.3f}; "
                  f"fraud recall {quality.fraud_recall:.3f}")


def _wait_seconds(text: str) -> float | None:
    """``--graph-wait``: a duration, or ``forever`` (None)."""
    if text.strip().lower() == "forever":
        return None
    try:
        return parse_duration_ms(text) / 1000
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a duration (10s, 500ms) nor "
                                 "`forever`", param_hint="--graph-wait") from None


@click.command("bench", epilog=RUN_ENV)
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
@click.option("--baseline-count", type=click.IntRange(min=100), default=20_000,
              show_default=True, help="Messages the naive baseline consumer reads (it is slow).")
@click.option("--config", "config_ref", default="default", show_default=True,
              help="Detector config: a preset or a TOML file.")
@click.option("--batch-timeout", type=DURATION, default="1ms", show_default=True,
              help="The daemon's longest wait to fill a batch.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("reports/bench.json"), show_default=True,
              help="Where to write the figures as JSON.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--trace-memory", is_flag=True,
              help="Trace the daemon's allocations (tracemalloc; slower) and report the "
                   "sites that grew most after the first 3 minutes.")
@click.pass_context
def bench(ctx: click.Context, count: int, rate: float, duration: int | None, projection: bool,
          baseline_count: int, config_ref: str, batch_timeout: int, json_path: Path,
          seed: int, trace_memory: bool) -> None:
    """End-to-end benchmark: decisions/s, latency, projection, CPU, naive baseline.

    Generates COUNT transactions into fresh topics (deleted afterwards) on the
    running stack, runs the detector daemon (and the projection) over them, then
    a naive one-message-at-a-time consumer over the same input, and reports the
    daemon's throughput as a ratio to it.  The graph is shared; the blocklist
    lives in its own schema for the run.
    """
    import json

    from fraudgraph import bench as bench_run
    from fraudgraph.ui import report

    settings = settings_from(ctx)
    if duration is not None:
        if rate <= 0:
            raise click.UsageError("--duration needs --rate (transactions per second)")
        count = round(rate * duration / 1000)
    result = bench_run.run(settings, _config(config_ref), count, rate, seed, projection,
                           settings.data_dir / "bench", report, batch_timeout / 1000,
                           baseline_count, trace_memory)
    figures = result.as_json()
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(figures, indent=2) + "\n")
    naive = result.naive
    out.print(table("fraudgraph bench", ["", "value"], [
        ["transactions", f"{count:,}"],
        ["offered rate", f"{rate:,.0f}/s" if rate > 0 else "backlog (as fast as possible)"],
        ["decisions", f"{result.decisions:,}"],
        ["throughput", f"{result.decisions_per_second:,.0f} decisions/s"],
        *[[f"latency p{q}", f"{result.latency(q):,.1f} ms"] for q in (50, 95, 99)],
        ["projection", "off" if not projection else
         f"{result.projection_per_second or 0:,.0f} tx/s, lag "
         f"{result.projection_lag_at_end or 0:,} when the daemon finished"],
        *[[f"CPU s: {k}", f"{v:,.1f}"] for k, v in result.cpu_seconds.items()],
        ["naive baseline", f"{naive.per_second:,.0f} msg/s over {naive.messages:,}"
         if naive else "-"],
        ["ratio to naive", f"{result.ratio_to_naive:,.1f}x" if result.ratio_to_naive else
         "- (from a backlog only)"],
        *([["daemon RSS first / max / last",
            " / ".join(f"{v:,.0f} MB" for v in (result.samples[0][1],
                                                max(x[1] for x in result.samples),
                                                result.samples[-1][1]))],
           ["lag max / last", f"{max(x[2] for x in result.samples):,.0f} / "
                              f"{result.samples[-1][2]:,.0f}"]] if result.samples else []),
    ]))
    if result.memory_growth:
        out.print(table("allocations that grew most after the warm-up",
                        ["where", "KB", "blocks"],
                        [[where, f"{kb:,.0f}", f"{blocks:,}"]
                         for where, kb, blocks in result.memory_growth]))
    written = [json_path]
    if len(result.samples) >= 3:
        written.append(bench_run.plot_samples(figures["samples"], json_path.with_suffix(".png")))
    out.print(f"wrote {', '.join(str(p) for p in written)}")


def _config(ref: str) -> detector_config.DetectorConfig:
    try:
        return detector_config.load(ref)
    except detector_config.ConfigError as exc:
        raise ConfigError(f"detector config: {exc}") from None


@click.command(epilog=env_epilog("FRAUDGRAPH_KAFKA_BOOTSTRAP", "FRAUDGRAPH_TOPIC_DECISIONS"))
@click.option("--truth", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Ground-truth labels (JSONL from `fraudgraph generate`).")
@click.option("--decisions", "decisions_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read decisions from this JSONL file instead of the decisions topic.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("reports/latest"), show_default=True,
              help="Folder for report.md and the PNG charts.")
@click.option("-k", type=click.IntRange(min=1), default=100, show_default=True,
              help="Cards an analyst team checks per day (Card Precision@k).")
@click.option("--since", type=EventTime(), metavar="TIME",
              help="Only transactions at or after this event time (ISO-8601 with zone).")
@click.pass_context
def evaluate(ctx: click.Context, truth: Path, decisions_file: Path | None, out_dir: Path,
             k: int, since: int | None) -> None:
    """Score the decisions against the ground truth: report and charts.

    Precision, recall and F1 at the review and block thresholds, AUC-ROC and
    average precision (overall and per scenario), Card Precision@k per day,
    decision latency; writes report.md and PNGs to --out.  --since keeps the
    transactions from that event time on (a backtest's evaluation window).
    """
    from fraudgraph import evaluate as ev
    from ingest import kafka

    settings = settings_from(ctx)
    decoder = msgspec.json.Decoder(DecisionRecord)
    if decisions_file is not None:
        with open(decisions_file, "rb") as handle:
            records = [decoder.decode(line) for line in handle if line.strip()]
    else:
        records = [decoder.decode(m.value() or b"{}") for m in
                   kafka.read_all(settings.kafka.bootstrap, settings.topics.decisions)]
    if not records:
        source = decisions_file or settings.topics.decisions
        raise ConfigError(f"no decisions to evaluate in {source}: run `fraudgraph run` first "
                          "(or pass --decisions FILE)")
    labels = ev.read_truth(truth)
    if since is not None:
        records, labels = ev.since(records, labels, since)
        if not records:
            raise ConfigError("no decisions at or after --since: choose an earlier time")
    rows = ev.join(records, labels)
    report = ev.build(rows, labels, k)
    files = ev.write(report, rows, out_dir)
    columns, printed = ev.console_table(report)
    out.print(table(f"evaluation of {report.decisions:,} decisions (full table: report.md)",
                    columns, printed))
    for line in ev.undecided_lines(report):
        out.print(line)
    out.print(f"Card Precision@{k}: {report.card_precision:.3f} (mean over "
              f"{len(report.card_precision_per_day)} days); latency "
              + ", ".join(f"{q} {v:,.1f} ms" for q, v in report.latency_ms.items()))
    out.print(f"wrote {', '.join(str(f) for f in files)}")
