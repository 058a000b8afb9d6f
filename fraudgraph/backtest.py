"""`fraudgraph backtest`: a labelled history replayed through the engine, in event time.

How the README's detection figures are made, and how a user tries fraudgraph on
data of their own.  Per history (a generated seed, or a transactions file with its
labels file) and per variant:

1. fresh topics, consumer groups and blocklist schema of its own, and an empty
   graph (Neo4j Community has one database: the backtest owns it while it runs);
2. produce the transactions, and the labels in report-time order (each label is
   in the topic before the first transaction after its report time);
3. project and decide, the projector and the daemon side by side, the daemon
   waiting for the graph to hold each batch's time (``--graph-wait forever``):
   every check is as of the transaction's time, so the result does not depend on
   timing;
4. a ``+gnn`` variant runs 2-3 in two phases: up to the evaluation cut (the labels
   reported by then), then ``gnn train`` and ``gnn score`` on that graph (its
   scores are as of the cut), then the rest of the history with the scores;
5. evaluate the decisions against the truth from the cut on (the window every
   variant is compared on; ``--cut`` is its position in the history), and over
   the whole history.

Results: ``summary.md`` and ``summary.json`` in ``--out``, and each variant's
evaluation report (``report.md`` with charts) beside them.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

import cypher
from detectors import config as detector_config
from detectors.config import DetectorConfig
from detectors.decision import ALLOW, BLOCK, REVIEW, RULE, DecisionRecord
from detectors.features import NAMES
from detectors.pipeline import certain, model_thresholds
from fraudgraph import connect, model_service
from fraudgraph import evaluate as ev
from fraudgraph.backtest_protocol import (
    OPTIONAL_FIELDS,
    Variant,
)
from fraudgraph.errors import ConfigError
from fraudgraph.settings import Settings
from fraudgraph.stream import daemon, projector
from graph.projection import clear_graph
from ingest import kafka
from ingest.generator import Generator, GeneratorConfig, label_for, report_ms
from ingest.labels import decode_label
from ingest.publish import Publisher
from ingest.runs import read_records
from ingest.transaction import (
    DecodeError,
    DecoderConfig,
    Transaction,
    decode,
    encode,
    iso_from_ms,
)
from learned import training
from learned.dataset import Logged
from learned.scorer import Scorer
from learned.training import NotEnoughLabels, TrainConfig

log = logging.getLogger(__name__)
_LABEL = msgspec.json.Encoder()
_DECISION = msgspec.json.Decoder(DecisionRecord)
_LINE = msgspec.json.Encoder()


#: what the offline replay of a model run's logged vectors adds (same run, same vectors:
#: the model's decisions never change the state the vectors are computed from)
ABLATION = "model-nograph"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class History:
    """Transactions in event order, labels with their report times, the truth file."""

    name: str
    transactions: list[Transaction]
    labels: list[tuple[int, str, bytes]]  # (reported ms, transaction id, record), in order
    truth: Path
    frauds: dict[str, int] = field(default_factory=dict)  # fraud: transaction id -> reported


def generated(seed: int, count: int, folder: Path, without: tuple[str, ...] = ()) -> History:
    """The default generator's first ``count`` transactions of ``seed``, without the
    fields named in ``without`` (keys of :data:`OPTIONAL_FIELDS`)."""
    config = GeneratorConfig(seed=seed)
    dropped = {OPTIONAL_FIELDS[name]: None for name in without}
    txs, labels = [], []
    for tx, scenario in itertools.islice(Generator(config), count):
        if dropped:
            tx = msgspec.structs.replace(tx, **dropped)
        txs.append(tx)
        if scenario is not None:
            label = label_for(tx, scenario, config.label_delay_ms)
            labels.append((report_ms(tx, config.label_delay_ms), tx.transaction_id,
                           _LABEL.encode(label)))
    labels.sort(key=lambda label: label[0])
    folder.mkdir(parents=True, exist_ok=True)
    truth = folder / "truth.jsonl"
    truth.write_bytes(b"".join(raw + b"\n" for _, _, raw in labels))
    return History(f"seed {seed}", txs, labels, truth,
                   {tx_id: reported for reported, tx_id, _ in labels})


def from_files(transactions: Path, labels: Path, decoder: DecoderConfig, folder: Path,
               label_delay_ms: int = 7 * DAY_MS) -> History:
    """A history of your own: transactions (JSONL or CSV, as `fraudgraph produce` reads
    them) and their labels (JSONL or CSV: transaction_id, label, source, reported_at, and
    optionally scenario, card_id, user_id, event_time; a label without ``reported_at``
    is reported ``label_delay_ms`` after its transaction).  The labels, completed, are
    written to ``folder/truth.jsonl``.  Raises ValueError naming the first bad line."""
    txs = []
    for number, raw in read_records(transactions):
        try:
            txs.append(decode(raw, decoder))
        except DecodeError as error:
            raise ValueError(f"{transactions}:{number}: {error.reason}: {error}") from None
    if not txs:
        raise ConfigError(f"{transactions} holds no transactions: --input takes the "
                          "history's transactions, JSONL or CSV")
    txs.sort(key=lambda tx: tx.event_ms)
    event_ms = {tx.transaction_id: tx.event_ms for tx in txs}
    found, frauds = [], {}
    for number, raw in read_records(labels):
        try:
            raw = _reported(raw, event_ms, label_delay_ms)
            label, _ = decode_label(raw, max_future_ms=decoder.max_future_ms)
        except (DecodeError, msgspec.DecodeError) as error:
            raise ValueError(f"{labels}:{number}: {error}") from None
        found.append((label.reported_ms, label.transaction_id, raw))
        if label.label == "fraud":
            frauds[label.transaction_id] = label.reported_ms
    found.sort(key=lambda label: label[0])
    folder.mkdir(parents=True, exist_ok=True)
    truth = folder / "truth.jsonl"
    truth.write_bytes(b"".join(raw + b"\n" for _, _, raw in found))
    return History(transactions.stem, txs, found, truth, frauds)


def _reported(raw: bytes, event_ms: dict[str, int], delay_ms: int) -> bytes:
    """A label record with ``reported_at``: as given, else its transaction's time plus
    the label delay."""
    record = msgspec.json.decode(raw)
    if not isinstance(record, dict) or record.get("reported_at") not in (None, ""):
        return raw
    at = event_ms.get(str(record.get("transaction_id")))
    if at is None:
        raise DecodeError("unknown_transaction", "no reported_at, and its transaction is "
                          "not in the transactions file (its time plus --label-delay)")
    return _LABEL.encode({**record, "reported_at": iso_from_ms(at + delay_ms)})


@dataclass
class Outcome:
    """One variant on one history: its evaluation in the window and overall."""

    history: str
    variant: str
    window: ev.Report
    whole: ev.Report
    seconds: float
    gnn_train: str = ""  # what `gnn train` printed (its AP against the baseline)


@dataclass
class Backtest:
    settings: Settings
    out: Path
    # history is replayed: no event-time check against the wall clock
    decoder: DecoderConfig = field(default_factory=lambda: DecoderConfig(max_future_ms=None))
    cut: float = 0.6
    k: int = 100
    report: Callable[[str], None] = lambda _m: None
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S"))
    label_delay_ms: int = 7 * DAY_MS  # genuine once this old without a fraud label
    model_every_ms: int = 7 * DAY_MS  # between retrains of a model variant (event time)
    decisions_out: Path | None = None  # CSV of every decision (transaction_id,score,decision)

    def run(self, history: History, variant: Variant) -> list[Outcome]:
        """One variant on one history; a model variant adds its offline ablation."""
        started = time.monotonic()
        scope = self._scope(history, variant)
        folder = self.out / slug(history.name) / slug(variant.name)
        txs = history.transactions
        cut_ms = txs[int(len(txs) * self.cut)].event_ms
        driver = connect.neo4j(scope)
        try:
            clear_graph(driver)
        finally:
            driver.close()
        # one partition: the rules see the history in event order, as live traffic of one
        # partition would (several interleave by fetch order, not by time)
        kafka.ensure_topics(scope.kafka.bootstrap, scope.topics.all(), 1)
        retrains = self.retrains(history) if variant.model else []
        stops = sorted({*retrains, *([cut_ms] if variant.gnn else [])})
        trained = ""
        start: int | None = None
        for until in [*stops, None]:
            self.report(f"{history.name}, {variant.name}: deciding {_span(txs, start, until)}")
            self._produce(scope, history, start, until)
            self._decide(scope, variant)
            if until is not None and variant.gnn and (until == cut_ms or variant.model):
                self.report(f"{history.name}, {variant.name}: gnn train and score at "
                            f"{iso_from_ms(until)}")
                trained = self._gnn(scope, folder)
            if until in retrains:
                self._train(scope, history, until, folder)
            start = until
        records = [_DECISION.decode(m.value() or b"{}") for m in
                   kafka.read_all(scope.kafka.bootstrap, scope.topics.decisions)]
        outcomes = [self._outcome(history, variant.name, records, cut_ms, folder, started,
                                  trained)]
        if variant.model and not variant.gnn:
            replayed = self._replay(scope, history, variant, retrains, records, folder)
            outcomes.append(self._outcome(history, ABLATION, replayed, cut_ms,
                                          self.out / slug(history.name) / ABLATION, started))
        kafka.delete_topics(scope.kafka.bootstrap, scope.topics.all())
        return outcomes

    def retrains(self, history: History) -> list[int]:
        """Event times at which the model is retrained: every ``model_every_ms`` from
        the history's start, before its end."""
        first, last = history.transactions[0].event_ms, history.transactions[-1].event_ms
        return list(range(first + self.model_every_ms, last, self.model_every_ms))

    def _train(self, scope: Settings, history: History, as_of_ms: int, folder: Path) -> None:
        """Train on what the daemon logged, with the labels reported by ``as_of_ms``
        (those it has stored: the history's, in report order), promote if better."""
        self.report(f"{history.name}: model train as of {iso_from_ms(as_of_ms)}")
        store = connect.blocklist(scope)
        try:
            result = model_service.train(
                store, model_service.read_logged(scope, max_future_ms=None), history.frauds,
                model_service.TrainRequest(as_of_ms, self.label_delay_ms, "all", self.k))
        except NotEnoughLabels as exc:
            self.report(f"  not yet: {exc}")
            return
        finally:
            store.close()
        line = (f"{iso_from_ms(as_of_ms)} {result.version} AP {result.metrics['ap']:.3f} "
                f"{'promoted' if result.promoted else 'kept the champion'}\n")
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "models.txt").open("a") as handle:
            handle.write(line)
        self.report("  " + line.strip())

    def _replay(self, scope: Settings, history: History, variant: Variant, retrains: list[int],
                records: list[DecisionRecord], folder: Path) -> list[DecisionRecord]:
        """The ablation, from the same run's logged vectors: a model without the graph
        features retrained at the same times, deciding what the daemon's model decided
        (the rules' certain reasons still decide alone).  The same replay with every
        feature must give the daemon's own scores: checked, a mismatch stops the run."""
        logged = model_service.read_logged(scope, max_future_ms=None)
        folder.mkdir(parents=True, exist_ok=True)
        # what the daemon logged, for analysis beside the reports (np.load)
        np.savez_compressed(folder / "vectors.npz", ids=np.array(logged.ids),
                            event_ms=logged.event_ms, cards=np.array(logged.cards), X=logged.X,
                            names=np.array(NAMES), retrains=np.array(retrains),
                            fraud_ids=np.array(list(history.frauds)),
                            fraud_reported_ms=np.array(list(history.frauds.values())))
        config = detector_config.load(variant.config)
        for features, check in (("all", True), ("no-graph", False)):
            replayed = replay(logged, history.frauds, retrains, records, config, features,
                              self.label_delay_ms, self.k)
            if check:
                _same_scores(records, replayed)
            else:
                return replayed
        raise AssertionError("unreachable")  # pragma: no cover

    def _outcome(self, history: History, name: str, records: list[DecisionRecord],
                 cut_ms: int, folder: Path, started: float, trained: str = "") -> Outcome:
        write_decisions(records, folder / "decisions.jsonl")
        if self.decisions_out is not None:
            write_csv(records, self.decisions_out, history.name, name)
        truth = ev.read_truth(history.truth)
        whole = self._evaluate(records, truth, folder / "whole")
        in_window, window_truth = ev.since(records, truth, cut_ms)
        window = self._evaluate(in_window, window_truth, folder / "window")
        return Outcome(history.name, name, window, whole, time.monotonic() - started, trained)

    def _scope(self, history: History, variant: Variant) -> Settings:
        prefix = f"backtest-{self.run_id}-{slug(history.name)}-{slug(variant.name)}"
        topics = {name: f"{prefix}-{name}" for name in
                  ("transactions", "decisions", "alerts", "training", "labels", "dlq")}
        return dataclasses.replace(
            self.settings, topics=dataclasses.replace(self.settings.topics, **topics),
            postgres=dataclasses.replace(self.settings.postgres,
                                         schema=prefix.replace("-", "_")))

    def _produce(self, scope: Settings, history: History, start: int | None,
                 until: int | None) -> None:
        """Transactions with event times in [start, until), and the labels reported in
        that span, each label before the first transaction after its report time."""
        out = Publisher(scope.kafka.bootstrap)
        labels = [label for label in history.labels
                  if (start is None or label[0] >= start) and (until is None or label[0] < until)]
        waiting = iter(labels)
        pending = next(waiting, None)
        for tx in history.transactions:
            if (start is not None and tx.event_ms < start) or \
                    (until is not None and tx.event_ms >= until):
                continue
            while pending is not None and pending[0] <= tx.event_ms:
                out.send(scope.topics.labels, pending[1].encode(), pending[2])
                pending = next(waiting, None)
            out.send(scope.topics.transactions, tx.card_id.encode(), encode(tx))
        for _, key, raw in itertools.chain([pending] if pending else [], waiting):
            out.send(scope.topics.labels, key.encode(), raw)
        out.flush()

    def _decide(self, scope: Settings, variant: Variant) -> None:
        """The projector and the daemon side by side until both are idle; the daemon's
        rule state carries over to the next phase (its checkpoint at a clean stop)."""
        group = scope.postgres.schema
        stop_daemon = threading.Event()
        failed: list[BaseException] = []

        def project() -> None:
            try:
                projector.run(scope, projector.ProjectorOptions(group=f"{group}-projection",
                                                                until_idle=5.0),
                              self.decoder, stop=threading.Event())
            except BaseException as exc:  # the daemon would wait for the graph forever
                failed.append(exc)
                stop_daemon.set()

        projecting = threading.Thread(target=project, name="projector", daemon=True)
        projecting.start()
        daemon.run(scope, detector_config.load(variant.config),
                   daemon.DaemonOptions(group=f"{group}-detector", until_idle=10.0,
                                        graph_wait=None),
                   self.decoder, stop=stop_daemon)
        projecting.join()
        if failed:
            raise RuntimeError(f"the projector failed: {failed[0]}") from failed[0]

    def _gnn(self, scope: Settings, folder: Path) -> str:
        env = {**os.environ, "FRAUDGRAPH_POSTGRES_SCHEMA": scope.postgres.schema,
               **{f"FRAUDGRAPH_TOPIC_{name.upper()}": value
                  for name, value in dataclasses.asdict(scope.topics).items()}}
        printed = []
        for args in (["gnn", "train"], ["gnn", "score"]):
            done = subprocess.run([sys.executable, "-m", "fraudgraph", *args], env=env,
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0 and args[1] == "train":
                # too few labels yet (an early retrain boundary): no GNN scores this time
                self.report(f"  gnn train skipped: {done.stderr.strip()[-300:]}")
                return ""
            if done.returncode != 0:
                raise RuntimeError(f"fraudgraph {' '.join(args)} failed: "
                                   f"{done.stderr.strip()[-2000:]}")
            printed.append(done.stdout)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gnn.txt").write_text("\n".join(printed))
        return printed[0]

    def _evaluate(self, records: list[DecisionRecord], truth: ev.Truth,
                  folder: Path) -> ev.Report:
        rows = ev.join(records, truth)
        report = ev.build(rows, truth, self.k)
        ev.write(report, rows, folder)
        return report


def graph_size(settings: Settings) -> int:
    """Nodes in the graph (a backtest refuses to empty a graph that holds data unless
    told to)."""
    driver = connect.neo4j(settings)
    try:
        records, _, _ = driver.execute_query(cypher.load("graph_counts"))
        return sum(int(r["count"]) for r in records if r["kind"] == "node")
    finally:
        driver.close()


def write_decisions(records: list[DecisionRecord], path: Path) -> Path:
    """What was decided, one JSON line per transaction in id order, without the
    wall-clock fields (``decided_ms``, ``produced_ms``): two runs of one history and
    config give the same bytes, so ``cmp`` or ``sha256sum`` compares engines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    latest = {r.transaction_id: r for r in records}  # a redelivery repeats a record
    with path.open("wb") as out:
        for key in sorted(latest):
            r = latest[key]
            out.write(_LINE.encode({"transaction_id": key, "decision": r.decision,
                                    "score": round(r.score, 6),
                                    "reasons": [[x.code, x.detail] for x in r.reasons]}) + b"\n")
    return path


def replay(logged: Logged, frauds: dict[str, int], retrains: list[int],
           records: list[DecisionRecord], config: DetectorConfig, features: str,
           label_delay_ms: int, k: int) -> list[DecisionRecord]:
    """The daemon's records as a model on ``features`` would have decided them: retrained
    at each of ``retrains`` on the logged vectors settled by then, promoted as the
    daemon's registry promotes (only when better than the champion on the same window),
    scoring every transaction from its promotion on that no certain reason decides."""
    train_config = TrainConfig(columns=model_service.FEATURE_SETS[features])
    champion: training.Trained | None = None
    promoted: list[tuple[int, Scorer, float, float, str]] = []
    for at in retrains:
        try:
            fitted = training.train(logged, frauds, at, label_delay_ms, NAMES, train_config,
                                    k_per_day=k)
        except NotEnoughLabels:
            continue
        rows, y = model_service.validation_window(logged, frauds, at, label_delay_ms,
                                                  train_config)
        if champion is not None and not training.better(fitted.metrics["ap"], training.evaluate(
                champion.model_text, champion.columns, NAMES, rows.X, y, rows.event_ms,
                rows.cards, k)["ap"]):
            continue
        champion = fitted
        review, block = model_thresholds(config.model, fitted.thresholds["review"],
                                         fitted.thresholds["block"])
        promoted.append((at, Scorer(fitted.model_text, fitted.columns, NAMES), review, block,
                         f"replay-{features}-{iso_from_ms(at)}"))
    index = {tx_id: i for i, tx_id in enumerate(logged.ids)}
    deciding: dict[int, list[int]] = {}  # promoted model -> positions of its records
    for position, r in enumerate(records):
        # without the graph, a certain reason the graph produced (a ring member's
        # blocklist entry) is not there to decide
        codes = (x.code for x in r.reasons if features == "all" or x.detector == RULE)
        which = next((m for m in range(len(promoted) - 1, -1, -1)
                      if promoted[m][0] <= r.event_ms), None)
        if which is not None and r.transaction_id in index and not certain(config.model, codes):
            deciding.setdefault(which, []).append(position)
    out = list(records)
    for which, positions in deciding.items():  # one predict call per model
        _, scorer, review, block, version = promoted[which]
        where = [index[records[p].transaction_id] for p in positions]
        for position, p in zip(positions, scorer.predict(logged.X[where]).tolist(), strict=True):
            decision = BLOCK if p >= block else REVIEW if p >= review else ALLOW
            out[position] = msgspec.structs.replace(
                records[position], score=round(p, 6), decision=decision, model_version=version)
    return out


def _same_scores(daemon: list[DecisionRecord], replayed: list[DecisionRecord]) -> None:
    """The offline replay with every feature must give the daemon's own decisions: the
    same transactions scored by a model, the same scores and decisions."""
    differ = [(d.transaction_id, d.score, r.score, d.decision, r.decision)
              for d, r in zip(daemon, replayed, strict=True)
              if (d.model_version is None) != (r.model_version is None)
              or abs(d.score - r.score) > 1e-6 or d.decision != r.decision]
    if differ:
        raise RuntimeError(f"the offline replay differs from the daemon on {len(differ)} "
                           f"decisions (first: {differ[0]}): the ablation would not be "
                           "comparable")


def write_csv(records: list[DecisionRecord], path: Path, history: str, variant: str) -> Path:
    """``transaction_id,score,decision``, one row per transaction (``--decisions-out``);
    with several histories or variants, one file each beside ``path``."""
    target = path if path.suffix == ".csv" else path.with_suffix(".csv")
    target = target.with_name(f"{target.stem}.{slug(history)}.{slug(variant)}.csv")
    target.parent.mkdir(parents=True, exist_ok=True)
    latest = {r.transaction_id: r for r in records}
    with target.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["transaction_id", "score", "decision"])
        for key in sorted(latest):
            out.writerow([key, f"{latest[key].score:.6f}", latest[key].decision])
    return target


def _span(txs: list[Transaction], start: int | None, until: int | None) -> str:
    """The event-time span of a phase, for the progress lines."""
    first = txs[0].event_ms if start is None else start
    last = txs[-1].event_ms if until is None else until
    return f"{iso_from_ms(first)} → {iso_from_ms(last)} (event time)"


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def summary(outcomes: Iterable[Outcome], context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The README's table (Markdown) and the same figures as JSON: per variant, the mean
    over the histories of the window's figures, then every history's own line."""
    outcomes = list(outcomes)
    variants = list(dict.fromkeys(o.variant for o in outcomes))
    scenarios = sorted({r.name for o in outcomes for r in o.window.rows} - {"all"})

    def figures(report: ev.Report) -> dict[str, float | None]:
        overall = report.rows[0]
        values: dict[str, float | None] = {
            "recall": overall.review_or_block.recall,
            "flag_precision": overall.review_or_block.precision,
            "block_precision": overall.block.precision if overall.block.flagged else None,
            "auc": overall.auc, "ap": overall.average_precision,
            "card_precision": report.card_precision}
        for row in report.rows[1:]:
            values[f"recall {row.name}"] = row.review_or_block.recall
        return values

    per = {v: [figures(o.window) for o in outcomes if o.variant == v] for v in variants}
    mean = {v: {key: _mean([f.get(key) for f in rows]) for key in rows[0]}
            for v, rows in per.items()}
    columns = ["variant", *[f"recall {s}" for s in scenarios], "recall", "flag precision",
               "block precision", "AUC-ROC", "AP", f"CP@{context['k']}"]
    keys = [*[f"recall {s}" for s in scenarios], "recall", "flag_precision",
            "block_precision", "auc", "ap", "card_precision"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for v in variants:
        lines.append("| " + " | ".join([v, *(fmt(mean[v].get(k)) for k in keys)]) + " |")
    lines += ["", "Per history (window):", "",
              "| history | variant | fraud | recall | block precision | AUC-ROC | AP | "
              f"CP@{context['k']} |", "|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        f = figures(o.window)
        lines.append(f"| {o.history} | {o.variant} | {o.window.rows[0].frauds:,} | "
                     f"{fmt(f['recall'])} | {fmt(f['block_precision'])} | {fmt(f['auc'])} | "
                     f"{fmt(f['ap'])} | {fmt(f['card_precision'])} |")
    data = {"context": context, "mean": mean,
            "outcomes": [{"history": o.history, "variant": o.variant,
                          "window": figures(o.window), "whole": figures(o.whole),
                          "undecided_fraud": o.window.undecided_fraud,
                          "seconds": round(o.seconds, 1)} for o in outcomes]}
    return "\n".join(lines), data


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_summary(out: Path, outcomes: list[Outcome], context: dict[str, Any]) -> Path:
    table, data = summary(outcomes, context)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(data, indent=2))
    header = "\n".join(f"- {key}: {value}" for key, value in context.items())
    (out / "summary.md").write_text(f"# fraudgraph backtest\n\n{header}\n\nWindow: from the "
                                    f"cut to the end; mean over the histories.\n\n{table}\n")
    return out / "summary.md"
