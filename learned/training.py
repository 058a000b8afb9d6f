"""Training a gradient-boosted per-transaction risk model as of a time, and comparing models.

:func:`train` takes the rows settled as of ``as_of_ms`` (see
:func:`learned.dataset.settle`), keeps the newest fifth as a validation window
and fits a LightGBM binary classifier on the older rows, stopping early on the
window's average precision; the early-stopped booster is the model (no refit on
all rows, so the validation metrics describe the model that is shipped).  The
rarity of fraud is met with ``scale_pos_weight`` = negatives / positives of the
training part, capped at ``TrainConfig.max_pos_weight``; the weight inflates the
scores, so they rank transactions but are not calibrated fraud probabilities:
compare a model's scores only with that model's own thresholds.

Training is deterministic: the same rows, labels and config give a byte-identical
``model_text`` (LightGBM's ``deterministic``, row-wise histograms, a fixed seed
and thread count).  Labels reported after ``as_of_ms`` cannot change it.

Thresholds come from the validation window: ``review`` is where the team's
daily capacity of ``k_per_day`` cards is reached
(:func:`learned.capacity.threshold_for_capacity`); ``block`` is the score of the
row that closes the top ``block_share`` of the validation rows at or above
``review``, so that at most about that share of what would be reviewed is
blocked outright (``block >= review`` always).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from learned.capacity import card_precision_at_k, threshold_for_capacity
from learned.dataset import Logged, settle, time_split
from learned.drift import Reference
from learned.scorer import Scorer, column_positions, ensemble_text

MIN_LABELS = 5


class NotEnoughLabels(ValueError):
    """Too few settled frauds or genuine rows in the training part or the validation window."""


@dataclass(frozen=True)
class TrainConfig:
    """LightGBM and split settings; ``columns`` None means the whole feature vector."""

    num_leaves: int = 31
    learning_rate: float = 0.05
    max_rounds: int = 400
    early_stopping: int = 40
    min_child_samples: int = 20
    feature_fraction: float = 0.9
    bagging_fraction: float = 1.0  # 1.0 with bagging_freq 0: bagging off
    bagging_freq: int = 0
    seed: int = 7
    threads: int = 2
    columns: tuple[str, ...] | None = None
    valid_share: float = 0.2
    max_pos_weight: float = 100.0
    #: members of the ensemble: each fitted with its own seed on a bagged 80 % of the
    #: rows and features, their probabilities averaged (variance: with a few hundred
    #: frauds a single early-stopped model's ranking moves a lot from seed to seed)
    ensemble: int = 5


@dataclass(frozen=True)
class Trained:
    """A trained model with what the daemon needs to score, explain, watch and threshold it."""

    model_text: str
    columns: tuple[str, ...]
    feature_names: tuple[str, ...]
    metrics: dict[str, float]
    reference: Reference
    thresholds: dict[str, float]


@dataclass(frozen=True)
class _Part:
    """Rows of one side of the split: full vectors, labels, event times, cards."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int8]
    event_ms: npt.NDArray[np.int64]
    cards: list[str]

    @property
    def positives(self) -> int:
        return int(self.y.sum())

    @property
    def negatives(self) -> int:
        return int(self.y.size - self.y.sum())


def _parts(
    logged: Logged, frauds: Mapping[str, int], as_of_ms: int, label_delay_ms: int, share: float
) -> tuple[_Part, _Part]:
    index, y = settle(logged, frauds, as_of_ms, label_delay_ms)
    train_pos, valid_pos = time_split(logged.event_ms[index], share)

    def part(positions: npt.NDArray[np.int64]) -> _Part:
        rows = index[positions]
        return _Part(
            X=logged.X[rows],
            y=y[positions],
            event_ms=logged.event_ms[rows],
            cards=[logged.cards[i] for i in rows],
        )

    return part(train_pos), part(valid_pos)


def _check_labels(fit: _Part, valid: _Part, as_of_ms: int, label_delay_ms: int) -> None:
    if min(fit.positives, fit.negatives, valid.positives, valid.negatives) < MIN_LABELS:
        raise NotEnoughLabels(
            f"not enough settled labels as of {as_of_ms} (label delay {label_delay_ms} ms): "
            f"training part has {fit.positives} fraud / {fit.negatives} genuine, validation "
            f"window {valid.positives} fraud / {valid.negatives} genuine; need at least "
            f"{MIN_LABELS} of each in both"
        )


def _params(config: TrainConfig, pos_weight: float) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": "average_precision",
        "num_leaves": config.num_leaves,
        "learning_rate": config.learning_rate,
        "min_data_in_leaf": config.min_child_samples,
        "feature_fraction": config.feature_fraction,
        "bagging_fraction": config.bagging_fraction,
        "bagging_freq": config.bagging_freq,
        "scale_pos_weight": pos_weight,
        "seed": config.seed,
        "num_threads": config.threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def _fit(
    fit: _Part,
    valid: _Part,
    columns: tuple[str, ...],
    positions: npt.NDArray[np.intp],
    config: TrainConfig,
) -> tuple[str, int]:
    """The early-stopped booster's text and its number of rounds."""
    pos_weight = min(fit.negatives / fit.positives, config.max_pos_weight)
    params = _params(config, pos_weight)
    train_set = lgb.Dataset(
        fit.X[:, positions], label=fit.y, feature_name=list(columns), params=params
    )
    valid_set = lgb.Dataset(valid.X[:, positions], label=valid.y, reference=train_set)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.max_rounds,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(config.early_stopping, verbose=False)],
    )
    rounds = booster.best_iteration
    return booster.model_to_string(num_iteration=rounds), rounds


def _members(config: TrainConfig) -> list[TrainConfig]:
    """The configs of the ensemble's members (one: the config itself)."""
    if config.ensemble <= 1:
        return [config]
    return [replace(config, seed=config.seed + i,
                    bagging_fraction=min(config.bagging_fraction, 0.8), bagging_freq=1,
                    feature_fraction=min(config.feature_fraction, 0.8))
            for i in range(config.ensemble)]


def _thresholds(
    scores: npt.NDArray[np.float64], valid: _Part, k_per_day: int, block_share: float
) -> dict[str, float]:
    review = threshold_for_capacity(scores, valid.event_ms, valid.cards, k_per_day)
    flagged = np.sort(scores[scores >= review])[::-1]
    if flagged.size == 0:
        return {"review": review, "block": review}
    top = max(1, math.ceil(round(block_share * flagged.size, 9)))  # 0.2 * 15 is not 3.0
    return {"review": review, "block": float(flagged[top - 1])}


def train(
    logged: Logged,
    frauds: Mapping[str, int],
    as_of_ms: int,
    label_delay_ms: int,
    feature_names: Sequence[str],
    config: TrainConfig,
    k_per_day: int = 100,
    block_share: float = 0.2,
) -> Trained:
    """Train the model as of ``as_of_ms``; raises NotEnoughLabels when labels are too few.

    ``frauds`` maps transaction id → the time its fraud label was reported;
    ``feature_names`` names the columns of ``logged.X``.  ``metrics`` are measured
    on the validation window: ap, auc, card_precision (at ``k_per_day``), positives,
    negatives, valid_rows, plus train_rows and rounds (of the early-stopped model);
    ``thresholds`` holds ``review`` and ``block`` (see the module docstring).
    """
    if logged.X.shape[1] != len(feature_names):
        raise ValueError(f"{len(feature_names)} feature names for {logged.X.shape[1]} columns")
    if not 0.0 < block_share <= 1.0:
        raise ValueError(f"block_share must be in (0, 1], got {block_share}")
    names = tuple(feature_names)
    columns = names if config.columns is None else tuple(config.columns)
    positions = column_positions(columns, names)
    fit, valid = _parts(logged, frauds, as_of_ms, label_delay_ms, config.valid_share)
    _check_labels(fit, valid, as_of_ms, label_delay_ms)
    fitted = [_fit(fit, valid, columns, positions, member)
              for member in _members(config)]
    model_text = ensemble_text([text for text, _ in fitted])
    rounds = sum(r for _, r in fitted) / len(fitted)
    scores = Scorer(model_text, columns, names).predict(valid.X)
    metrics = _metrics(scores, valid, k_per_day)
    metrics.update(
        positives=float(valid.positives),
        negatives=float(valid.negatives),
        train_rows=float(fit.y.size),
        valid_rows=float(valid.y.size),
        rounds=float(rounds),
    )
    return Trained(
        model_text=model_text,
        columns=columns,
        feature_names=names,
        metrics=metrics,
        reference=Reference.of(fit.X),
        thresholds=_thresholds(scores, valid, k_per_day, block_share),
    )


def _metrics(scores: npt.NDArray[np.float64], part: _Part, k_per_day: int) -> dict[str, float]:
    """AP and AUC (NaN when the labels have one class only) and Card Precision@k."""
    both_classes = part.positives > 0 and part.negatives > 0
    return {
        "ap": float(average_precision_score(part.y, scores)) if both_classes else math.nan,
        "auc": float(roc_auc_score(part.y, scores)) if both_classes else math.nan,
        "card_precision": card_precision_at_k(scores, part.y, part.event_ms, part.cards, k_per_day),
    }


def evaluate(
    model_text: str,
    columns: Sequence[str],
    feature_names: Sequence[str],
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    event_ms: npt.ArrayLike,
    cards: Sequence[str],
    k_per_day: int,
) -> dict[str, float]:
    """ap, auc and card_precision of a model on a window of full-vector rows.

    Score the champion and a challenger on the same window with it; ap and auc are
    NaN when the window's labels have one class only.
    """
    X_full = np.asarray(X)
    part = _Part(
        X=X_full.astype(np.float32, copy=False),
        y=np.asarray(y, dtype=np.int8).reshape(-1),
        event_ms=np.asarray(event_ms, dtype=np.int64).reshape(-1),
        cards=list(cards),
    )
    scores = Scorer(model_text, columns, feature_names).predict(part.X)
    return _metrics(scores, part, k_per_day)


def better(challenger_ap: float, champion_ap: float | None, min_gain: float = 0.0) -> bool:
    """Whether the challenger should replace the champion (AP on the same window).

    A challenger with an undefined AP (NaN) never wins; with no champion (None, or
    an undefined AP) any defined challenger wins; otherwise it must beat the
    champion by more than ``min_gain`` (a tie keeps the champion).
    """
    if math.isnan(challenger_ap):
        return False
    if champion_ap is None or math.isnan(champion_ap):
        return True
    return challenger_ap > champion_ap + min_gain
