"""Rule-state checkpoints of a daemon's consumer group (:mod:`detectors.checkpoint`):
restored at start (the source resumes at the saved offsets), saved at most every
``checkpoint_every`` seconds after a batch's effects are durable."""

from __future__ import annotations

import logging
import time

from detectors import checkpoint
from detectors.features import FeatureState
from detectors.pipeline import Detector
from detectors.rules import RuleEngine
from fraudgraph.settings import Settings
from ingest.source import TransactionSource

log = logging.getLogger(__name__)


class RuleState:
    """Rule-state checkpoints (:mod:`detectors.checkpoint`) of this daemon's group."""

    def __init__(self, settings: Settings, group: str, every: float | None,
                 detector: Detector) -> None:
        """``every``: seconds between checkpoints; None: none (a ``--from-beginning``
        run, which rebuilds the state from the start)."""
        self.path = checkpoint.path_for(settings.data_dir, group, settings.topics.transactions)
        self.every = every
        self.detector = detector
        self.last = time.monotonic()

    def restore(self, source: TransactionSource) -> None:
        """Load the checkpoint into the rules and have ``source`` resume at its offsets.
        A ``--from-beginning`` run removes it (it rebuilds the state from the start);
        a checkpoint whose offsets the topic no longer has is ignored."""
        if self.every is None:
            if self.path.exists():
                self.path.unlink()
            return
        saved = checkpoint.load(self.path, self.detector.version)
        if saved is None:
            return
        if not source.offsets_valid(saved.offsets):
            log.warning("ignoring the rule-state checkpoint %s: its offsets are outside the "
                        "topic's (recreated, or truncated by retention); empty state", self.path)
            return
        try:
            self.detector.restore(saved.state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("ignoring the rule-state checkpoint %s (%s); empty state", self.path, exc)
            # nothing half-restored
            self.detector.engine = RuleEngine(self.detector.config)
            self.detector.features = FeatureState(self.detector.config.state.max_cards)
            return
        source.start_at(saved.offsets)
        log.warning("rule state restored from %s (%s); resuming at %s", self.path,
                    ", ".join(f"{k} {v}" for k, v in self.detector.engine.state_sizes().items()),
                    ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(saved.offsets.items())))

    def checkpoint(self, source: TransactionSource, force: bool = False) -> None:
        """Save state and positions, at most every ``checkpoint_every`` seconds (or now);
        called only when everything consumed so far has durable effects."""
        if self.every is None or (not force and time.monotonic() - self.last < self.every):
            return
        self.last = time.monotonic()
        positions = source.positions()
        if positions:
            size = checkpoint.save(self.path, positions, self.detector.snapshot(),
                                   self.detector.version)
            log.debug("rule-state checkpoint: %d bytes in %.3fs", size,
                      time.monotonic() - self.last)
