"""`fraudgraph evaluate`: score the daemon's decisions against the ground truth."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from detectors.decision import DecisionRecord
from fraudgraph.errors import ConfigError
from fraudgraph.ui import EventTime, env_epilog, out, settings_from, table


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
