"""A history of your own for `fraudgraph backtest`: labels without a report time, CSV
labels, and the decisions CSV (pure file handling, no stack)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from detectors.decision import DecisionRecord
from fraudgraph import backtest as bt
from ingest.transaction import DecoderConfig, Transaction, encode

T0 = 1_767_225_600_000
DAY = 86_400_000


def tx(n: int, at: int) -> Transaction:
    return Transaction(transaction_id=f"t{n}", event_ms=at, amount_minor=1000, currency="USD",
                       card_id="c1", user_id="u1", site_id="s1", country="US")


def test_labels_without_a_report_time_are_reported_after_the_label_delay(
        tmp_path: Path) -> None:
    (tmp_path / "tx.jsonl").write_bytes(b"\n".join(encode(tx(n, T0 + n * DAY))
                                                   for n in range(3)) + b"\n")
    with (tmp_path / "labels.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["transaction_id", "label", "source", "reported_at"])
        out.writerow(["t0", "fraud", "chargeback", ""])
        out.writerow(["t2", "fraud", "chargeback", "2026-01-03T12:00:00Z"])
        out.writerow(["t1", "genuine", "review", ""])
    history = bt.from_files(tmp_path / "tx.jsonl", tmp_path / "labels.csv",
                            DecoderConfig(max_future_ms=None), tmp_path / "out", 7 * DAY)
    assert history.frauds == {"t0": T0 + 7 * DAY, "t2": T0 + 2 * DAY + DAY // 2}
    assert [(ms, key) for ms, key, _ in history.labels] == [
        (T0 + 2 * DAY + DAY // 2, "t2"), (T0 + 7 * DAY, "t0"), (T0 + 8 * DAY, "t1")]
    truth = [json.loads(line) for line in history.truth.read_text().splitlines()]
    assert truth[1]["reported_at"] == "2026-01-08T00:00:00.000Z"


def test_a_label_without_report_time_or_transaction_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "tx.jsonl").write_bytes(encode(tx(0, T0)) + b"\n")
    (tmp_path / "labels.jsonl").write_text('{"transaction_id": "t9", "label": "fraud", '
                                           '"source": "x"}\n')
    with pytest.raises(ValueError, match=r"labels.jsonl:1: .*not in the transactions file"):
        bt.from_files(tmp_path / "tx.jsonl", tmp_path / "labels.jsonl",
                      DecoderConfig(max_future_ms=None), tmp_path / "out")


def test_the_decisions_csv_has_one_row_per_transaction(tmp_path: Path) -> None:
    def record(key: str, score: float, decision: str) -> DecisionRecord:
        return DecisionRecord(transaction_id=key, decision=decision, score=score, reasons=[],
                              card_id="c", user_id="u", site_id="s", device_id=None,
                              ip_address=None, amount_minor=1, currency="USD", country="US",
                              event_time="2026-01-01T00:00:00.000Z", event_ms=T0, decided_ms=0,
                              rules_version="r")
    written = bt.write_csv([record("b", 0.5, "review"), record("a", 0.1, "allow"),
                            record("b", 0.5, "review")], tmp_path / "d.csv", "seed 1", "model")
    assert written.name == "d.seed-1.model.csv"
    assert written.read_text().splitlines() == [
        "transaction_id,score,decision", "a,0.100000,allow", "b,0.500000,review"]


def test_an_empty_history_and_generator_options_with_input_are_clear_errors(
        tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from fraudgraph.errors import ConfigError

    (tmp_path / "tx.jsonl").write_text("")
    (tmp_path / "labels.jsonl").write_text("")
    with pytest.raises(ConfigError, match="holds no transactions"):
        bt.from_files(tmp_path / "tx.jsonl", tmp_path / "labels.jsonl",
                      DecoderConfig(max_future_ms=None), tmp_path / "out")
    fraudgraph = Path(sys.executable).parent / "fraudgraph"
    done = subprocess.run(
        [str(fraudgraph), "backtest", "--input", str(tmp_path / "tx.jsonl"), "--labels",
         str(tmp_path / "labels.jsonl"), "--count", "5000", "--without", "ip"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "FRAUDGRAPH_NEO4J_PASSWORD": "unused-here-1",
             "FRAUDGRAPH_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode != 0
    assert "--count, --without shape generated histories" in done.stderr
    assert "Traceback" not in done.stderr
