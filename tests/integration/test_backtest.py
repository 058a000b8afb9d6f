"""`fraudgraph backtest` on a history of your own, on the real stack: it refuses a graph
that holds data unless told to clear it, reports labels without ``reported_at`` after
the label delay, retrains the model inside the replay, and writes every decision."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import msgspec
import pytest

from fraudgraph import connect
from fraudgraph.settings import Settings
from ingest.generator import Generator, GeneratorConfig
from ingest.transaction import encode
from tests.integration.cli_helpers import run_cli

pytestmark = pytest.mark.integration
COUNT = 21_000  # three days of the generator's traffic


def history(folder: Path, unique: str) -> tuple[Path, Path, set[str], set[str]]:
    """Transactions (JSONL) and their fraud labels (CSV without reported_at)."""
    txs, frauds = folder / "tx.jsonl", folder / "labels.csv"
    ids, fraud_ids = set(), set()
    with txs.open("wb") as out, frauds.open("w", newline="") as labels:
        writer = csv.writer(labels)
        writer.writerow(["transaction_id", "label", "source"])
        for tx, scenario in itertools.islice(Generator(GeneratorConfig(seed=3)), COUNT):
            tx = msgspec.structs.replace(tx, transaction_id=f"{unique}-{tx.transaction_id}")
            out.write(encode(tx) + b"\n")
            ids.add(tx.transaction_id)
            if scenario is not None:
                writer.writerow([tx.transaction_id, "fraud", "chargeback"])
                fraud_ids.add(tx.transaction_id)
    return txs, frauds, ids, fraud_ids


def test_a_history_of_your_own_with_the_model_retrained_inside_the_replay(
        stack: Settings, tmp_path: Path, unique: str) -> None:
    txs, labels, ids, fraud_ids = history(tmp_path, unique)
    driver = connect.neo4j(stack)
    try:
        driver.execute_query("MERGE (:Card {id: $id})", id=f"{unique}-kept")
    finally:
        driver.close()
    out = tmp_path / "out"
    args = ["backtest", "--input", str(txs), "--labels", str(labels), "--variant", "rules",
            "--variant", "model", "--label-delay", "12h", "--model-every", "1d",
            "--out", str(out), "--decisions-out", str(out / "decisions.csv")]

    refused = run_cli(*args)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "--clear-graph" in refused.stderr and not out.exists()

    done = run_cli(*args, "--clear-graph", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(event time)" in done.stdout  # progress in event time
    summary = json.loads((out / "summary.json").read_text())
    assert [o["variant"] for o in summary["outcomes"]] == ["rules", "model", "model-nograph"]
    assert summary["context"]["label delay"] == "0.5 d"
    # the truth written beside the reports: every label, reported 12 h after its transaction
    truth = [json.loads(line) for line in (out / "tx" / "truth.jsonl").read_text().splitlines()]
    assert {t["transaction_id"] for t in truth} == fraud_ids
    models = (out / "tx" / "model" / "models.txt").read_text().splitlines()
    assert models and all("AP" in line for line in models)
    for variant in ("rules", "model", "model-nograph"):
        with (out / f"decisions.tx.{variant}.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert [*rows[0]] == ["transaction_id", "score", "decision"]
        assert {r["transaction_id"] for r in rows} == ids and len(rows) == COUNT
        assert {r["decision"] for r in rows} <= {"allow", "review", "block"}
    decided = [json.loads(line) for line in
               (out / "tx" / "model" / "decisions.jsonl").read_text().splitlines()]
    scored = [d for d in decided if d["reasons"] and d["reasons"][0][0] == "model"]
    assert scored, "the retrained model decided nothing"
