"""The learned model's wiring: logged vectors and labels in, a registered model out.

``fraudgraph model train`` (and the backtest, at each retrain boundary) reads the
vectors the daemon logged on the ``training`` topic (:mod:`detectors.features`)
and the fraud labels stored in PostgreSQL, trains a gradient-boosted model on the
rows settled as of the training time (:mod:`learned.training`), registers it in
``risk_models`` with its artifact (:class:`Artifact`: the model, its feature
schema and columns, its thresholds, its training window's feature distribution)
and promotes it only if it beats the champion on the same validation window.  The
daemon's side is :class:`ModelScorer` (:mod:`fraudgraph.stream.model_watch` loads it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from detectors.features import NAMES, SCHEMA_VERSION, TrainingRecord, graph_feature
from fraudgraph.settings import Settings
from ingest import kafka
from learned import dataset, drift, training
from learned.scorer import Scorer
from storage import models as registry
from storage.blocklist import BlocklistStore
from storage.models import ModelRow

log = logging.getLogger(__name__)
_RECORD = msgspec.json.Decoder(TrainingRecord)
DAY_MS = 86_400_000
#: the feature sets a model may use: all, or all but the graph's (the ablation)
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "all": NAMES, "no-graph": tuple(n for n in NAMES if not graph_feature(n))}


@dataclass(frozen=True)
class Artifact:
    """What the registry row holds besides its figures (JSON in ``artifact``)."""

    schema: int
    feature_names: tuple[str, ...]
    columns: tuple[str, ...]
    model: str  # LightGBM's text model
    review: float
    block: float
    capacity: int  # cards a day the review threshold was set for
    reference: dict[str, Any]  # drift.Reference of the training rows

    def dumps(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def loads(cls, text: str) -> Artifact:
        raw = json.loads(text)
        return cls(int(raw.get("schema", -1)), tuple(raw.get("feature_names", ())),
                   tuple(raw.get("columns", ())), str(raw.get("model", "")),
                   float(raw.get("review", 1.0)), float(raw.get("block", 1.0)),
                   int(raw.get("capacity", 0)), dict(raw.get("reference", {})))


class ModelScorer:
    """A promoted model as :class:`detectors.pipeline.Detector` calls it: one predict
    per batch; it times itself and counts the batch into the drift counter."""

    def __init__(self, version: str, artifact: Artifact) -> None:
        self.version, self.review, self.block = version, artifact.review, artifact.block
        self.feature_names = artifact.feature_names
        self._scorer = Scorer(artifact.model, artifact.columns, artifact.feature_names)
        self.drift = drift.DriftCounter(drift.Reference.from_json(artifact.reference))
        self.seconds = 0.0
        #: the last batch's rows (held, so their identity is theirs) and their matrix
        self._matrix: tuple[Sequence[Sequence[float]], np.ndarray] | None = None
        self._scores: list[np.ndarray] = []

    def _as_matrix(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        if self._matrix is None or self._matrix[0] is not rows:
            self._matrix = (rows, np.asarray(rows, dtype=np.float32))
        return self._matrix[1]

    def predict(self, rows: Sequence[Sequence[float]]) -> Sequence[float]:
        started = time.perf_counter()
        matrix = self._as_matrix(rows)
        scores = self._scorer.predict(matrix)
        self.drift.add(matrix)
        self._scores.append(scores)
        self.seconds += time.perf_counter() - started
        return scores.tolist()

    def explain(self, rows: Sequence[Sequence[float]], which: Sequence[int],
                top: int) -> list[list[tuple[str, float]]]:
        started = time.perf_counter()
        found = self._scorer.explain(self._as_matrix(rows), which, top)
        self._matrix = None
        self.seconds += time.perf_counter() - started
        return found

    def take_scores(self) -> np.ndarray:
        taken = np.concatenate(self._scores) if self._scores else np.empty(0)
        self._scores = []
        return taken


def read_logged(settings: Settings, max_future_ms: int | None = DAY_MS) -> dataset.Logged:
    """Every vector the daemons logged on ``training`` under this feature schema (a
    redelivered decision: its last record).  A record that is not one, of another
    schema or size, or dated before 1970 or more than ``max_future_ms`` ahead of the
    clock (None: any time, for replayed history) is left out and counted in the log."""
    rows, skipped = [], 0
    latest = (None if max_future_ms is None else int(time.time() * 1000) + max_future_ms)
    for message in kafka.read_all(settings.kafka.bootstrap, settings.topics.training):
        try:
            r = _RECORD.decode(message.value() or b"")
        except msgspec.DecodeError:
            skipped += 1  # not a vector record (an older daemon's transaction record)
            continue
        if r.schema != SCHEMA_VERSION or len(r.vector) != 4 * len(NAMES) or \
                not 0 <= r.event_ms < (latest if latest is not None else 1 << 62):
            skipped += 1
            continue
        rows.append((r.transaction_id, r.event_ms, r.card_id,
                     np.frombuffer(r.vector, dtype="<f4")))
    if skipped:
        log.warning("%d records on %s are not vectors of feature schema v%d (or are dated "
                    "outside 1970 .. now + %s ms): left out", skipped,
                    settings.topics.training, SCHEMA_VERSION, max_future_ms)
    return dataset.Logged.from_rows(rows, len(NAMES))


def training_time(logged: dataset.Logged, requested_ms: int | None) -> int:
    """The training time: the one asked for, else the newest logged event time."""
    if requested_ms is not None:
        return requested_ms
    if not len(logged):
        raise training.NotEnoughLabels("no logged feature vectors on the training topic: "
                                       "run the daemon (`fraudgraph run`) first")
    return int(logged.event_ms.max())


@dataclass(frozen=True)
class Trained:
    version: str
    promoted: bool
    metrics: dict[str, float]
    champion: str | None
    champion_metrics: dict[str, float] | None
    drift: list[tuple[str, float]]  # features over the drift threshold, highest first
    artifact: Artifact


@dataclass(frozen=True)
class TrainRequest:
    as_of_ms: int | None = None  # None: the newest logged event time
    label_delay_ms: int = 7 * DAY_MS
    features: str = "all"
    capacity: int = 100  # cards a day the review threshold is set for
    promote: bool = True  # only if it beats the champion on the same window


def train(store: BlocklistStore, logged: dataset.Logged, frauds: Mapping[str, int],
          request: TrainRequest, report: Callable[[str], None] = lambda _m: None) -> Trained:
    """Train, register and (if better) promote, holding the training lock.  Raises
    :class:`learned.training.NotEnoughLabels` and :class:`storage.models.TrainingLocked`."""
    if not len(logged):
        raise training.NotEnoughLabels("no logged feature vectors on the training topic: "
                                       "run the daemon (`fraudgraph run`) first")
    as_of = training_time(logged, request.as_of_ms)
    config = training.TrainConfig(columns=FEATURE_SETS[request.features])
    with registry.training_lock(store.conn, registry.RISK_TRAIN_LOCK):
        report(f"training on the vectors settled as of {_iso(as_of)} ...")
        fitted = training.train(logged, frauds, as_of, request.label_delay_ms, NAMES, config,
                                k_per_day=request.capacity)
        artifact = Artifact(SCHEMA_VERSION, NAMES, fitted.columns, fitted.model_text,
                            fitted.thresholds["review"], fitted.thresholds["block"],
                            request.capacity, fitted.reference.to_json())
        window = validation_window(logged, frauds, as_of, request.label_delay_ms, config)
        champion = registry.champion(store.conn, registry.RISK)
        champion_metrics = _champion_metrics(store, champion, window, request.capacity)
        version = _version(as_of, fitted.model_text)
        row = ModelRow(version, datetime.now(UTC), int(logged.event_ms.min()), as_of, as_of,
                       int(fitted.metrics.get("train_rows", 0) + fitted.metrics.get(
                           "valid_rows", 0)), float(fitted.metrics["ap"]),
                       {**fitted.metrics, "champion": champion_metrics},
                       {"schema": SCHEMA_VERSION, "features": request.features,
                        "label_delay_ms": request.label_delay_ms,
                        "capacity": request.capacity, **dataclasses.asdict(config)}, "",
                       False, None)
        registry.record(store.conn, row, registry.RISK, artifact.dumps())
        promoted = request.promote and training.better(
            float(fitted.metrics["ap"]),
            None if champion_metrics is None else champion_metrics["ap"])
        if promoted:
            registry.promote(store.conn, version, registry.RISK)
    return Trained(version, promoted, fitted.metrics,
                   champion.version if champion else None, champion_metrics,
                   drifted(fitted.reference, logged, as_of), artifact)


def validation_window(logged: dataset.Logged, frauds: Mapping[str, int], as_of_ms: int,
                      label_delay_ms: int, config: training.TrainConfig
                      ) -> tuple[dataset.Logged, np.ndarray]:
    """The newest settled rows (the window a challenger and the champion are compared on)."""
    index, y = dataset.settle(logged, frauds, as_of_ms, label_delay_ms)
    _, valid = dataset.time_split(logged.event_ms[index], config.valid_share)
    return logged.select(index[valid]), y[valid]


def _champion_metrics(store: BlocklistStore, champion: ModelRow | None,
                      window: tuple[dataset.Logged, np.ndarray],
                      capacity: int) -> dict[str, float] | None:
    if champion is None:
        return None
    artifact = Artifact.loads(registry.artifact(store.conn, champion.version) or "{}")
    if artifact.schema != SCHEMA_VERSION:
        return None  # another schema's columns: not comparable, the challenger wins
    rows, y = window
    return training.evaluate(artifact.model, artifact.columns, artifact.feature_names, rows.X,
                             y, rows.event_ms, rows.cards, capacity)


def drifted(reference: drift.Reference, logged: dataset.Logged, as_of_ms: int,
            recent_ms: int = 7 * DAY_MS) -> list[tuple[str, float]]:
    """Features whose last ``recent_ms`` of logged vectors (up to ``as_of_ms``) have
    drifted from ``reference`` (PSI above the threshold), highest first."""
    recent = (logged.event_ms > as_of_ms - recent_ms) & (logged.event_ms <= as_of_ms)
    if not recent.any():
        return []
    values = drift.psi(reference, logged.X[recent])
    found = [(NAMES[i], float(v)) for i, v in enumerate(values) if v > drift.DRIFT_THRESHOLD]
    return sorted(found, key=lambda item: -item[1])


def _version(as_of_ms: int, model_text: str) -> str:
    digest = hashlib.sha256(model_text.encode()).hexdigest()[:8]
    return f"m{datetime.fromtimestamp(as_of_ms / 1000, UTC):%Y%m%d%H%M}-{digest}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Evaluation:
    version: str
    rows: int
    since_ms: int
    figures: dict[str, float]
    psi: list[tuple[str, float]]  # every feature, highest first


def evaluate(store: BlocklistStore, logged: dataset.Logged, frauds: Mapping[str, int],
             version: str | None, as_of_ms: int | None, label_delay_ms: int,
             since_ms: int | None, k: int) -> Evaluation:
    """A registered model (default: the champion) on the rows settled as of ``as_of_ms``
    with event times after ``since_ms`` (default: its training as-of time), and every
    feature's PSI over the vectors logged since then against its training window.
    Raises LookupError when there is no such model or nothing to evaluate."""
    row = (registry.get(store.conn, version, registry.RISK) if version
           else registry.champion(store.conn, registry.RISK))
    if row is None:
        raise LookupError(f"no model {version!r} in the registry (`fraudgraph model models`)"
                          if version else "no promoted model yet: `fraudgraph model train`")
    artifact = Artifact.loads(registry.artifact(store.conn, row.version) or "{}")
    if artifact.schema != SCHEMA_VERSION:
        raise LookupError(f"model {row.version} uses feature schema v{artifact.schema}; this "
                          f"version computes v{SCHEMA_VERSION}: retrain it")
    if not len(logged):
        raise LookupError("no logged feature vectors on the training topic")
    as_of = as_of_ms if as_of_ms is not None else int(logged.event_ms.max())
    since = row.cut_ms if since_ms is None else since_ms
    index, y = dataset.settle(logged, frauds, as_of, label_delay_ms)
    keep = logged.event_ms[index] > since
    rows, y = logged.select(index[keep]), y[keep]
    figures: dict[str, float] = {"rows": float(len(rows)), "frauds": float(y.sum())}
    if 0 < y.sum() < len(y):
        figures.update(training.evaluate(artifact.model, artifact.columns,
                                         artifact.feature_names, rows.X, y, rows.event_ms,
                                         rows.cards, k))
    recent = logged.event_ms > since
    values = (drift.psi(drift.Reference.from_json(artifact.reference), logged.X[recent])
              if recent.any() else np.zeros(len(NAMES)))
    psi = sorted(((NAMES[i], float(v)) for i, v in enumerate(values)), key=lambda p: -p[1])
    return Evaluation(row.version, len(rows), since, figures, psi)
