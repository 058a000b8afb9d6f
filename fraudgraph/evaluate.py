"""`fraudgraph evaluate`: decisions joined with the ground truth → Markdown report + charts.

The metric code is pure (``detectors.quality``); this module reads the inputs,
draws the PNGs with matplotlib (headless backend) and writes ``report.md``.

Nothing the engine failed to decide can flatter the report: every fraud-labelled
transaction of the truth file without a decision is joined in as a missed fraud
with score 0 (``detectors.quality.undecided``), and the report says how many.
The truth file of ``fraudgraph generate`` lists fraud only, so a genuine
transaction without a decision cannot be seen; a truth file that also lists
genuine transactions (``"label": "genuine"``) has its undecided ones counted
(reported, in no metric: an undecided genuine transaction was never flagged, and
counting it as an easy negative would flatter AUC and AP).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
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
    undecided,
)

CHARTS = ("precision_recall.png", "score_distribution.png", "recall_by_scenario.png",
          "latency.png")


class _Line(msgspec.Struct):
    """One line of a truth file (``fraudgraph generate`` writes ``ingest.generator.Label``)."""

    transaction_id: str
    scenario: str = "fraud"
    label: str = "fraud"
    card_id: str = ""
    event_time: str | None = None


@dataclass(frozen=True)
class Label:
    """A labelled transaction: its scenario (None: genuine), card and event time (ms;
    None where the truth file does not give it)."""

    scenario: str | None
    card_id: str
    event_ms: int | None


@dataclass(frozen=True)
class Truth:
    """The ground truth: transaction id → label.  ``lists_genuine``: the file labels
    genuine transactions too (the generator's lists fraud only)."""

    labels: dict[str, Label]

    @property
    def fraud(self) -> dict[str, str]:
        """transaction id → scenario of the fraud-labelled transactions."""
        return {t: label.scenario for t, label in self.labels.items()
                if label.scenario is not None}

    @property
    def lists_genuine(self) -> bool:
        return any(label.scenario is None for label in self.labels.values())


@dataclass(frozen=True)
class Report:
    rows: list[EvaluationRow]
    card_precision: float
    card_precision_per_day: dict[str, float]
    k: int
    latency_ms: dict[str, float]
    decisions: int  # decided transactions (a redelivered decision counts once)
    undecided_fraud: int  # fraud-labelled transactions without a decision (missed)
    undecided_genuine: int | None  # genuine-labelled ones; None: the truth lists fraud only


def read_truth(path: Path) -> Truth:
    """The labels file (JSONL, one label per transaction; ``label`` other than fraud is
    genuine; ``event_time`` ISO-8601 when given).  Raises ValueError on a bad line."""
    decoder = msgspec.json.Decoder(_Line)
    labels = {}
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            t = decoder.decode(line)
            labels[t.transaction_id] = Label(t.scenario if t.label == "fraud" else None,
                                             t.card_id, _ms(t.event_time))
    return Truth(labels)


def _ms(iso: str | None) -> int | None:
    """Epoch ms of an ISO-8601 time (UTC when it names no zone)."""
    if iso is None:
        return None
    moment = datetime.fromisoformat(iso)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def since(decisions: list[DecisionRecord], truth: Truth, start_ms: int
          ) -> tuple[list[DecisionRecord], Truth]:
    """The decisions of transactions at or after ``start_ms`` (event time) and the
    truth without the transactions before it (decided before it, or labelled with an
    earlier event time)."""
    before = {d.transaction_id for d in decisions if d.event_ms < start_ms}
    return ([d for d in decisions if d.event_ms >= start_ms],
            Truth({t: label for t, label in truth.labels.items() if t not in before
                   and (label.event_ms is None or label.event_ms >= start_ms)}))


def join(decisions: Iterable[DecisionRecord], truth: Truth) -> list[Scored]:
    """One row per decided transaction id (a redelivered decision counts once), then
    one per fraud-labelled transaction without a decision: a missed fraud with the
    lowest score (``detectors.quality.undecided``)."""
    fraud = truth.fraud
    rows: dict[str, Scored] = {}
    for d in decisions:
        latency = d.decided_ms - d.produced_ms if d.produced_ms is not None else None
        rows[d.transaction_id] = Scored(d.transaction_id, d.card_id, d.event_ms, d.score,
                                        d.decision, fraud.get(d.transaction_id), latency)
    missed = [undecided(t, truth.labels[t].card_id, truth.labels[t].event_ms or 0, scenario)
              for t, scenario in fraud.items() if t not in rows]
    return list(chain(rows.values(), missed))


def build(rows: list[Scored], truth: Truth, k: int) -> Report:
    """The report of ``rows`` (from :func:`join` with the same ``truth``)."""
    decided = {r.transaction_id for r in rows if r.decided}
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    mean, per_day = card_precision_at_k(rows, k)
    genuine = [t for t, label in truth.labels.items() if label.scenario is None]
    return Report(evaluate(rows), mean, per_day, k,
                  {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)}, len(decided),
                  sum(1 for r in rows if not r.decided),
                  sum(1 for t in genuine if t not in decided) if truth.lists_genuine
                  else None)


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
    """The report's table, one list per row in :data:`COLUMNS` order ("-": undefined)."""
    return [[r.name, f"{r.transactions:,}", f"{r.frauds:,}",
             f"{r.review_or_block.precision:.3f}", f"{r.review_or_block.recall:.3f}",
             f"{r.review_or_block.f1:.3f}", f"{r.block.precision:.3f}",
             f"{r.block.recall:.3f}", f"{r.block.f1:.3f}", _fmt(r.auc),
             _fmt(r.average_precision), f"{r.undecided:,}"] for r in report.rows]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


COLUMNS = ["scenario", "transactions", "fraud", "P (review+block)", "R (review+block)",
           "F1 (review+block)", "P (block)", "R (block)", "F1 (block)", "AUC-ROC", "AP",
           "undecided"]
CONSOLE = (0, 2, 3, 4, 6, 7, 9, 10, 11)  # the columns `fraudgraph evaluate` prints
CONSOLE_NAMES = ["scenario", "fraud", "P flag", "R flag", "P block", "R block", "AUC", "AP",
                 "undecided"]


def console_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """The columns and rows `fraudgraph evaluate` prints (the full table is report.md)."""
    return CONSOLE_NAMES, [[row[i] for i in CONSOLE] for row in table_rows(report)]


def undecided_lines(report: Report) -> list[str]:
    """What the report says about transactions without a decision."""
    genuine = ("not known: the truth file lists fraud only, so a genuine transaction "
               "the engine never decided cannot be seen"
               if report.undecided_genuine is None else
               f"{report.undecided_genuine:,} (labelled genuine in the truth file; in no "
               "metric)")
    return [f"undecided: {report.undecided_fraud:,} fraud-labelled transactions had no "
            "decision; each counts as a missed fraud (recall) with score 0 (AUC-ROC, AP), "
            "and none is in Card Precision@k or the latency",
            f"undecided genuine: {genuine}"]


def markdown(report: Report) -> str:
    lines = [
        "# fraudgraph evaluation",
        "",
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from "
        f"{report.decisions:,} decisions. Per scenario: that scenario's fraud against all "
        "genuine transactions. Flagged = review or block. Fraud counts the undecided "
        "(fraud-labelled, no decision: missed, score 0). AUC-ROC and AP are scikit-learn's; "
        "- where undefined.",
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
        *(f"- {line}" for line in undecided_lines(report)),
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
    decided = [r for r in rows if r.decided]  # an undecided fraud has no score to draw
    ax.hist([r.score for r in decided if not r.fraud], bins=bins, alpha=0.6, label="genuine",
            log=True)
    ax.hist([r.score for r in decided if r.fraud], bins=bins, alpha=0.6, label="fraud",
            log=True)
    ax.set(xlabel="score", ylabel="transactions (log)", title="Scores by class (decided)")
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
