"""`fraudgraph evaluate` on hand-made decisions: the report's numbers and its files."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from detectors.decision import DecisionRecord, ReasonRecord
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
    assert "| all | 2 | 1 |" in report and "card_testing" not in report
    assert "Labelled transactions without a decision: 1" in report
    late = run("evaluate", "--decisions", str(decisions_file), "--truth", str(truth_file),
               "--since", "2026-02-01T00:00:00+00:00")
    assert late.returncode == 1 and "no decisions at or after --since" in late.stderr
    bad = run("evaluate", "--decisions", str(decisions_file), "--truth", str(truth_file),
              "--since", "2026-01-02")
    assert bad.returncode == 2 and "is not a time like 2026-03-01T00:00:00Z" in bad.stderr
