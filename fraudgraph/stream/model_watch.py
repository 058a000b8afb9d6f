"""The daemon's learned model: the promoted one, looked for every ``model.reload``.

At start and then at most every ``model.reload`` the registry's champion
(``risk_models``, :mod:`storage.models`) is read; a new version is loaded and
handed to the detector, which from its next batch scores with it.  A model trained
on another feature schema is refused (logged once; the rules or the model before
it go on deciding): its columns would mean other things.  While PostgreSQL is
away the model in hand goes on.  Per batch the model's time, its score
distribution and every feature's drift against its training window (population
stability index over the rows since the last export) go to the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from detectors.features import SCHEMA_VERSION
from detectors.pipeline import Detector
from fraudgraph import metrics
from fraudgraph.model_service import Artifact, ModelScorer
from fraudgraph.stream.health import Health
from storage import models as registry
from storage.blocklist import BlocklistStore

log = logging.getLogger(__name__)
DRIFT_ROWS = 20_000  # rows between drift exports (and resets)


class ModelWatch:
    def __init__(self, store: BlocklistStore, detector: Detector, health: Health) -> None:
        self.store, self.detector, self.health = store, detector, health
        self.version: str | None = None
        self.refused: set[str] = set()
        self._next = 0.0
        self._seconds_before = 0.0  # predict time of the models replaced

    def look(self) -> None:
        """Load the champion if it changed (at most every ``model.reload``)."""
        config = self.detector.config.model
        if not config.enabled or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + config.reload_ms / 1000
        self.health.attempt("postgres", self._load)

    def _load(self) -> None:
        row = registry.champion(self.store.conn, registry.RISK)
        if row is None or row.version in (self.version, *self.refused):
            return
        try:
            artifact = Artifact.loads(registry.artifact(self.store.conn, row.version) or "{}")
            if artifact.schema != SCHEMA_VERSION:
                raise ValueError(f"trained on feature schema v{artifact.schema}, this daemon "
                                 f"computes v{SCHEMA_VERSION}; retrain it "
                                 "(`fraudgraph model train`)")
            scorer = ModelScorer(row.version, artifact)
        except Exception as exc:  # a model that cannot score must not stop the stream
            self.refused.add(row.version)
            log.error("refusing model %s: %s; the %s go%s on deciding", row.version,
                      f"{exc}"[:300], "model before it" if self.version else "rules",
                      "es" if self.version else "")
            return
        if self.detector.scorer is not None:
            self._seconds_before += self.seconds()
        self.detector.scorer = scorer
        if self.version is not None:
            metrics.MODEL_INFO.labels(self.version).set(0)
        self.version = row.version
        metrics.MODEL_INFO.labels(row.version).set(1)
        log.warning("scoring with model %s (review >= %.3f, block >= %.3f)", row.version,
                    scorer.review, scorer.block)

    def seconds(self) -> float:
        """Time spent in the model's predict and explain calls so far."""
        scorer = self.detector.scorer
        held = scorer.seconds if isinstance(scorer, ModelScorer) else 0.0
        return self._seconds_before + held

    def after_batch(self) -> None:
        self.look()
        scorer = self.detector.scorer
        if not isinstance(scorer, ModelScorer):
            return
        for score in scorer.take_scores():
            metrics.MODEL_SCORE.observe(score)
        if scorer.drift.rows >= DRIFT_ROWS:
            _export(scorer.feature_names, scorer.drift.psi())
            scorer.drift.reset()


def _export(names: Sequence[str], values: Any) -> None:
    for name, value in zip(names, values, strict=True):
        metrics.MODEL_FEATURE_PSI.labels(name).set(float(value))
