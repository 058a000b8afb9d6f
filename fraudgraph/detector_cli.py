"""`fraudgraph run`: the streaming detector daemon, with a summary when it stops."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from detectors import config as detector_config
from detectors.config import parse_duration_ms
from detectors.quality import measure, percentile
from fraudgraph.errors import ConfigError
from fraudgraph.ingest_cli import decoder_config
from fraudgraph.settings import require_secret
from fraudgraph.ui import DURATION, env_epilog, out, progress_bar, settings_from, table

if TYPE_CHECKING:
    from fraudgraph.stream import daemon

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
    from fraudgraph.stream import daemon  # the stream and the model: not for --help

    settings = settings_from(ctx)
    require_secret(settings.neo4j.password, "FRAUDGRAPH_NEO4J_PASSWORD")  # before any output
    if settings.postgres.managed:
        require_secret(settings.postgres.password, "FRAUDGRAPH_POSTGRES_PASSWORD")
    config = load_config(config_ref)
    options = daemon.DaemonOptions(
        group=group, batch_size=batch_size, batch_timeout=batch_timeout / 1000,
        from_beginning=from_beginning,
        until_idle=until_idle / 1000 if until_idle is not None else None,
        metrics_port=metrics_port, labels=not no_labels, keep_decisions=truth is not None,
        checkpoint_every=checkpoint_every / 1000 if checkpoint_every else None,
        graph_wait=wait_seconds(graph_wait))
    with progress_bar("deciding", None) as advance:
        stats = daemon.run(settings, config, options, decoder_config(settings), advance)
    out.print(table(f"detector daemon ({config.name})", ["", "value"], _summary(stats)))
    if truth is not None:
        _print_quality(stats, truth)


def wait_seconds(text: str) -> float | None:
    """``--graph-wait``: a duration, or ``forever`` (None)."""
    if text.strip().lower() == "forever":
        return None
    try:
        return parse_duration_ms(text) / 1000
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a duration (10s, 500ms) nor "
                                 "`forever`", param_hint="--graph-wait") from None


def load_config(ref: str) -> detector_config.DetectorConfig:
    """``--config``: a preset's name or a TOML file; a bad one is a one-line error."""
    try:
        return detector_config.load(ref)
    except detector_config.ConfigError as exc:
        raise ConfigError(f"detector config: {exc}") from None


def _summary(stats: daemon.DaemonStats) -> list[list[str]]:
    """The run's summary table."""
    seconds = stats.busy_seconds
    decided = sum(stats.outcomes.values())
    return [
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
    ]


def _print_quality(stats: daemon.DaemonStats, truth: Path) -> None:
    """Per-scenario recall and precision of the run's decisions against ``truth``."""
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
