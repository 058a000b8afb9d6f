"""`fraudgraph evaluate`: decisions joined with the ground truth → Markdown report + charts.

The metric code is pure (``detectors.quality``); this module reads the inputs,
draws the PNGs with matplotlib (headless backend) and writes ``report.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import msgspec

from detectors.decision import DecisionRecord
from detectors.quality import (
    EvaluationRow,
    Scored,
    card_precision_at_k,
    evaluate,
    percentile,
)

CHARTS = ("precision_recall.png", "score_distribution.png", "recall_by_scenario.png",
          "latency.png")


class _Truth(msgspec.Struct):
    transaction_id: str
    scenario: str = "fraud"
    label: str = "fraud"


@dataclass(frozen=True)
class Report:
    rows: list[EvaluationRow]
    card_precision: float
    card_precision_per_day: dict[str, float]
    k: int
    latency_ms: dict[str, float]
    decisions: int
    unmatched_truth: int  # labelled transactions without a decision


def read_truth(path: Path) -> dict[str, str]:
    """transaction id → scenario, from a labels file (JSONL; ``label`` genuine is skipped)."""
    decoder = msgspec.json.Decoder(_Truth)
    with open(path, "rb") as handle:
        return {t.transaction_id: t.scenario for t in map(decoder.decode, handle)
                if t.label == "fraud"}


def since(decisions: list[DecisionRecord], truth: dict[str, str], start_ms: int
          ) -> tuple[list[DecisionRecord], dict[str, str]]:
    """The decisions of transactions at or after ``start_ms`` (event time) and the
    truth without the transactions decided before it."""
    before = {d.transaction_id for d in decisions if d.event_ms < start_ms}
    return ([d for d in decisions if d.event_ms >= start_ms],
            {t: s for t, s in truth.items() if t not in before})


def join(decisions: Iterable[DecisionRecord], truth: dict[str, str]) -> list[Scored]:
    """One row per transaction id (a redelivered decision counts once)."""
    rows: dict[str, Scored] = {}
    for d in decisions:
        latency = d.decided_ms - d.produced_ms if d.produced_ms is not None else None
        rows[d.transaction_id] = Scored(d.transaction_id, d.card_id, d.event_ms, d.score,
                                        d.decision, truth.get(d.transaction_id), latency)
    return list(rows.values())


def build(rows: list[Scored], truth: dict[str, str], k: int) -> Report:
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    mean, per_day = card_precision_at_k(rows, k)
    decided = {r.transaction_id for r in rows}
    return Report(evaluate(rows), mean, per_day, k,
                  {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)}, len(rows),
                  sum(1 for t in truth if t not in decided))


def write(report: Report, rows: list[Scored], out: Path) -> list[Path]:
    """``report.md`` and the charts into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    _precision_recall(rows, out / CHARTS[0])
    _score_distribution(rows, out / CHARTS[1])
    _recall_by_scenario(report, out / CHARTS[2])
    _latency(rows, out / CHARTS[3])
    (out / "report.md").write_text(markdown(report))
    return [out / "report.md", *(out / name for name in CHARTS)]


def table_rows(report: Report) -> list[list[str]]:
    return [[r.name, f"{r.transactions:,}", f"{r.frauds:,}",
             f"{r.review_or_block.precision:.3f}", f"{r.review_or_block.recall:.3f}",
             f"{r.review_or_block.f1:.3f}", f"{r.block.precision:.3f}",
             f"{r.block.recall:.3f}", f"{r.block.f1:.3f}", f"{r.auc:.3f}",
             f"{r.average_precision:.3f}"] for r in report.rows]


COLUMNS = ["scenario", "transactions", "fraud", "P (review+block)", "R (review+block)",
           "F1 (review+block)", "P (block)", "R (block)", "F1 (block)", "AUC-ROC", "AP"]


def markdown(report: Report) -> str:
    lines = [
        "# fraudgraph evaluation",
        "",
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from "
        f"{report.decisions:,} decisions. Per scenario: that scenario's fraud against all "
        "genuine transactions. Flagged = review or block.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(row) + " |" for row in table_rows(report)),
        "",
        f"**Card Precision@{report.k}** (mean over {len(report.card_precision_per_day)} days): "
        f"{report.card_precision:.3f}",
        "",
        "| day | CP@k |",
        "|---|---|",
        *(f"| {day} | {value:.3f} |" for day, value in report.card_precision_per_day.items()),
        "",
        "**Decision latency** (Kafka timestamp of the transaction → decision): "
        + ", ".join(f"{q} {v:,.1f} ms" for q, v in report.latency_ms.items()),
        "",
        f"Labelled transactions without a decision: {report.unmatched_truth:,}",
        "",
        *(f"![{name}]({name})" for name in CHARTS),
        "",
    ]
    return "\n".join(lines)


def _precision_recall(rows: list[Scored], path: Path) -> None:
    ordered = sorted(rows, key=lambda r: -r.score)
    positives = sum(r.fraud for r in rows) or 1
    precision, recall, tp = [], [], 0
    for n, r in enumerate(ordered, start=1):
        tp += r.fraud
        precision.append(tp / n)
        recall.append(tp / positives)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (decision score)",
           xlim=(0, 1), ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _score_distribution(rows: list[Scored], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = [i / 20 for i in range(21)]
    ax.hist([r.score for r in rows if not r.fraud], bins=bins, alpha=0.6, label="genuine",
            log=True)
    ax.hist([r.score for r in rows if r.fraud], bins=bins, alpha=0.6, label="fraud", log=True)
    ax.set(xlabel="score", ylabel="transactions (log)", title="Scores by class")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _recall_by_scenario(report: Report, path: Path) -> None:
    rows = [r for r in report.rows if r.name != "all"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = [r.name for r in rows]
    ax.bar(names, [r.review_or_block.recall for r in rows], label="review or block")
    ax.bar(names, [r.block.recall for r in rows], label="block", alpha=0.8)
    ax.set(ylabel="recall", ylim=(0, 1.05), title="Recall by scenario")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latency(rows: list[Scored], path: Path) -> None:
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.hist(latencies or [0.0], bins=50)
    ax.set(xlabel="ms", ylabel="decisions", title="Decision latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
