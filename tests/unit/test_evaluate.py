"""`fraudgraph evaluate` on hand-made decisions: the report's numbers and its files."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from detectors.decision import DecisionRecord, ReasonRecord
from fraudgraph import evaluate as ev
from tests.unit.test_cli import run

T0 = 1_767_225_600_000
DAY = 86_400_000


def decision(n: int, decision: str, score: float, card: str, day: int = 0) -> DecisionRecord:
    return DecisionRecord(
        transaction_id=f"t{n}", decision=decision, score=score,
        reasons=[ReasonRecord("velocity", "rule", "x")] if decision != "allow" else [],
        card_id=card, user_id="u", site_id="s", device_id=None, ip_address=None,
        amount_minor=100, currency="USD", country="US", event_time="-",
        event_ms=T0 + day * DAY + n, decided_ms=T0 + day * DAY + n + 40, rules_version="v",
        produced_ms=T0 + day * DAY + n)


def inputs(folder: Path, decisions: list[DecisionRecord], truth: list[dict[str, str]]
           ) -> tuple[Path, Path]:
    """The decisions and ground-truth JSONL files `fraudgraph evaluate` reads."""
    decisions_file, truth_file = folder / "decisions.jsonl", folder / "truth.jsonl"
    decisions_file.write_bytes(b"".join(msgspec.json.encode(d) + b"\n" for d in decisions))
    truth_file.write_text("".join(json.dumps(t) + "\n" for t in truth))
    return decisions_file, truth_file


def test_evaluate_writes_the_report_and_charts(tmp_path: Path) -> None:
    decisions = [decision(1, "block", 0.9, "a"), decision(2, "review", 0.6, "b"),
                 decision(3, "allow", 0.1, "c"), decision(4, "block", 0.85, "d"),
                 decision(5, "allow", 0.0, "e", day=1),
                 decision(5, "allow", 0.0, "e", day=1)]  # redelivered: counted once
    truth = [{"transaction_id": "t1", "scenario": "card_testing"},
             {"transaction_id": "t2", "scenario": "velocity_burst"},
             {"transaction_id": "t3", "scenario": "velocity_burst"}]
    decisions_file, truth_file = inputs(tmp_path, decisions, truth)
    out = tmp_path / "report"
    result = run("evaluate", "--decisions", str(decisions_file), "--truth", str(truth_file),
                 "--out", str(out), "-k", "2")
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    # all: 3 fraud of 5; flagged t1, t2, t4 (t4 genuine) -> P 2/3, R 2/3; block t1, t4 -> P 0.5
    # AUC: positives beat negatives in 4 of 6 pairs; AP: (1 + 2/3 + 3/4) / 3
    assert ("| all | 5 | 3 | 0.667 | 0.667 | 0.667 | 0.500 | 0.333 | 0.400 | 0.667 | 0.806 |"
            in report)
    assert "| card_testing | 3 | 1 | 0.500 | 1.000 | 0.667 | 0.500 | 1.000 | 0.667 |" in report
    # day 1: a 0.9 fraud, d 0.85 genuine -> 0.5; day 2: e only, genuine -> 0.0
    assert "**Card Precision@2** (mean over 2 days): 0.250" in report
    assert "| 2026-01-01 | 0.500 |" in report and "| 2026-01-02 | 0.000 |" in report
    assert "p50 40.0 ms" in report
    for chart in ("precision_recall.png", "score_distribution.png", "recall_by_scenario.png",
                  "latency.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{chart}]({chart})" in report


def test_evaluate_without_decisions_says_what_to_do(tmp_path: Path) -> None:
    empty, truth = tmp_path / "none.jsonl", tmp_path / "truth.jsonl"
    empty.write_text("")
    truth.write_text("")
    result = run("evaluate", "--decisions", str(empty), "--truth", str(truth))
    assert result.returncode == 1
    assert "no decisions to evaluate" in result.stderr and "Traceback" not in result.stderr


def test_since_keeps_the_later_transactions_and_their_truth(tmp_path: Path) -> None:
    """A backtest's window: decisions and labels of transactions before --since leave the
    report (not counted as undecided fraud either)."""
    decisions = [decision(1, "block", 0.9, "a"), decision(2, "allow", 0.1, "b"),
                 decision(3, "review", 0.6, "c", day=1), decision(4, "allow", 0.2, "d", day=1)]
    truth = [{"transaction_id": "t1", "scenario": "card_testing"},
             {"transaction_id": "t3", "scenario": "fraud_ring"},
             {"transaction_id": "t9", "scenario": "fraud_ring"}]  # never decided
    decisions_file, truth_file = inputs(tmp_path, decisions, truth)
    out = tmp_path / "report"
    result = run("evaluate", "--decisions", str(decisions_file), "--truth", str(truth_file),
                 "--out", str(out), "--since", "2026-01-02T00:00:00Z")
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    # t3 decided (fraud), t4 (genuine) and the undecided t9: a missed fraud
    assert "| all | 3 | 2 |" in report and "card_testing" not in report
    assert "undecided: 1 fraud-labelled transactions had no decision" in report
    late = run("evaluate", "--decisions", str(decisions_file), "--truth", str(truth_file),
               "--since", "2026-02-01T00:00:00+00:00")
    assert late.returncode == 1 and "no decisions at or after --since" in late.stderr
    bad = run("evaluate", "--decisions", str(decisions_file), "--truth", str(truth_file),
              "--since", "2026-01-02")
    assert bad.returncode == 2 and "is not a time like 2026-03-01T00:00:00Z" in bad.stderr


def test_undecided_fraud_is_missed_and_counted(tmp_path: Path) -> None:
    """Fraud-labelled transactions without a decision (t8, t9) are missed frauds with score
    0: recall 2 / 4, not the flattering 2 / 2 of the decided ones alone."""
    decisions = [decision(1, "block", 0.9, "a"), decision(2, "review", 0.6, "b"),
                 decision(3, "allow", 0.3, "c"), decision(4, "allow", 0.1, "d"),
                 decision(5, "block", 0.8, "e")]
    truth = [{"transaction_id": "t1", "scenario": "card_testing"},
             {"transaction_id": "t2", "scenario": "card_testing"},
             {"transaction_id": "t8", "scenario": "card_testing", "card_id": "a",
              "event_time": "2026-01-01T00:00:00.008Z"},
             {"transaction_id": "t9", "scenario": "card_testing"}]
    decisions_file, truth_file = inputs(tmp_path, decisions, truth)
    labels = ev.read_truth(truth_file)
    rows = ev.join(decisions, labels)
    report = ev.build(rows, labels, k=2)
    everything = report.rows[0]
    assert (report.decisions, report.undecided_fraud, report.undecided_genuine) == (5, 2, None)
    assert (everything.transactions, everything.frauds, everything.undecided) == (7, 4, 2)
    flagged, blocked = everything.review_or_block, everything.block
    assert (flagged.true_positives, flagged.flagged, flagged.positives) == (2, 3, 4)
    assert flagged.recall == 0.5 and flagged.precision == 2 / 3
    assert (blocked.recall, blocked.precision) == (0.25, 0.5)
    # fraud 0.9, 0.6, 0, 0 against genuine 0.3, 0.1, 0.8: pairs won 3 + 2 + 0 + 0 of 12;
    # AP: 0.9 -> P 1, R 1/4; 0.6 -> P 2/3, R 2/4; the tied 0s -> P 4/7, R 1
    assert everything.auc == pytest.approx(5 / 12)
    assert everything.average_precision == pytest.approx(1 / 4 + 1 / 4 * 2 / 3 + 2 / 4 * 4 / 7)
    labels_all = [True, True, False, False, False, True, True]
    scores_all = [0.9, 0.6, 0.3, 0.1, 0.8, 0.0, 0.0]
    assert everything.auc == roc_auc_score(labels_all, scores_all)
    assert everything.average_precision == average_precision_score(labels_all, scores_all)
    # Card Precision@2 ranks decided cards only: a (0.9 fraud), e (0.8 genuine)
    assert report.card_precision == 0.5
    out = tmp_path / "report"
    result = run("evaluate", "--decisions", str(decisions_file), "--truth", str(truth_file),
                 "--out", str(out), "-k", "2")
    assert result.returncode == 0, result.stderr
    text = (out / "report.md").read_text()
    assert ("| all | 7 | 4 | 0.667 | 0.500 | 0.571 | 0.500 | 0.250 | 0.333 | 0.417 | 0.702 | 2 |"
            in text)
    assert "undecided: 2 fraud-labelled transactions had no decision" in text
    assert "undecided genuine: not known: the truth file lists fraud only" in text


def test_genuine_labels_without_a_decision_are_counted_not_scored(tmp_path: Path) -> None:
    """A truth file that lists genuine transactions: the undecided ones are counted and
    stay out of every metric (as easy negatives they would flatter AUC and AP)."""
    decisions = [decision(1, "block", 0.9, "a"), decision(2, "allow", 0.2, "b")]
    truth = [{"transaction_id": "t1", "scenario": "ring"},
             {"transaction_id": "t2", "scenario": "none", "label": "genuine"},
             {"transaction_id": "t7", "scenario": "none", "label": "genuine"}]
    _, truth_file = inputs(tmp_path, decisions, truth)
    labels = ev.read_truth(truth_file)
    assert labels.fraud == {"t1": "ring"} and labels.lists_genuine
    rows = ev.join(decisions, labels)
    report = ev.build(rows, labels, k=1)
    assert (report.undecided_fraud, report.undecided_genuine) == (0, 1)
    assert report.rows[0].transactions == 2 and report.rows[0].auc == 1.0
    assert "undecided genuine: 1 (labelled genuine" in ev.markdown(report)


def test_since_drops_undecided_fraud_labelled_before_it() -> None:
    labels = ev.Truth({"t8": ev.Label("ring", "a", T0), "t9": ev.Label("ring", "b", T0 + DAY),
                       "t7": ev.Label("ring", "c", None)})
    kept, truth = ev.since([decision(1, "allow", 0.1, "a", day=1)], labels, T0 + DAY)
    assert len(kept) == 1 and set(truth.labels) == {"t9", "t7"}  # t7: time unknown, kept
