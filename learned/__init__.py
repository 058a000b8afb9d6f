"""A gradient-boosted per-transaction risk model (LightGBM), as a pure layer.

``dataset``: logged feature vectors and the labels settled as of a time;
``training``: deterministic training as of a time, thresholds, champion/challenger
comparison; ``scorer``: probabilities and explanations for full feature vectors;
``drift``: PSI of live inputs against the training rows; ``capacity``: a review
threshold from k cards a day, and Card Precision@k.

Imports only numpy, lightgbm, sklearn.metrics and the standard library; the
daemon and the CLI wire it to the stream and to storage.
"""

from learned.capacity import card_precision_at_k, threshold_for_capacity
from learned.dataset import Logged, settle, time_split
from learned.drift import DRIFT_THRESHOLD, DriftCounter, Reference, psi
from learned.scorer import Scorer
from learned.training import NotEnoughLabels, TrainConfig, Trained, better, evaluate, train

__all__ = [
    "DRIFT_THRESHOLD",
    "DriftCounter",
    "Logged",
    "NotEnoughLabels",
    "Reference",
    "Scorer",
    "TrainConfig",
    "Trained",
    "better",
    "card_precision_at_k",
    "evaluate",
    "psi",
    "settle",
    "threshold_for_capacity",
    "time_split",
    "train",
]
