"""The daemon's worker thread: what it does beside its micro-batches, scheduled.

Every pass (at least every :data:`LABELS_EVERY` seconds, at once when the loop
moves ``graph_ms``): take the labels whose transaction the graph holds
(:class:`ingest.label_source.LabelSource`), apply them
(:class:`fraudgraph.stream.label_applier.LabelApplier`), commit their offsets and
publish up to which report time labels are applied (``labels_known_ms``): first,
as a batch of the loop may be waiting for exactly that; then write what the loop
queued for the graph (:class:`fraudgraph.stream.annotator.GraphAnnotator`: those
writes may wait on the projection's locks, and nothing waits for them), and at the
first pass and every :data:`RECONCILE_EVERY` seconds reconcile the graph's blocked
marks with the blocklist (``fraudgraph.blocking.Blocker.reconcile``).

The thread has its own PostgreSQL connection, so a write waiting on the
projection's locks never stalls the stream; what it blocklisted reaches the
loop's cache between batches (:meth:`Feedback.drain`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from detectors.blocklist import BlocklistCache, NewEntry
from detectors.features import KnownFraud
from fraudgraph.stream.annotator import GraphAnnotator
from fraudgraph.stream.health import Health, isolating, transient
from fraudgraph.stream.label_applier import LabelApplier
from ingest.label_source import INFINITY, LabelSource, PendingLabel

log = logging.getLogger(__name__)
LABELS_EVERY = 0.5  # seconds between passes of the worker when nothing wakes it
RECONCILE_EVERY = 300.0  # seconds between reconciliations of the graph's blocked marks


class Feedback:
    """The worker.  The loop tells it how far the graph is complete (``graph_ms``, then
    ``wake``), reads how far the labels are applied (``labels_known_ms``) and, between
    batches, takes what it blocklisted into the in-process cache (:meth:`drain`)."""

    def __init__(self, labels: LabelSource | None, applier: LabelApplier,
                 annotator: GraphAnnotator, health: Health, stop: threading.Event) -> None:
        self.labels, self.applier, self.annotator, self.health = labels, applier, annotator, health
        #: written by the loop: every transaction up to this event time is in the graph
        self.graph_ms = -INFINITY
        #: written here: every label reported up to this time is applied (and its
        #: blocklist entry queued for the loop); -inf before the consumer has partitions
        self.labels_known_ms = INFINITY if labels is None else -INFINITY
        self.wake = threading.Event()  # the loop moved graph_ms: look at the labels now
        self.joined = labels is None  # the labels consumer has its partitions
        self.labels_applied = 0
        self.blocked: queue.Queue[list[NewEntry]] = queue.Queue()  # for the loop's cache
        self.frauds: queue.Queue[list[KnownFraud]] = queue.Queue()  # for the feature state
        #: the loop's taker of confirmed frauds (its feature state), called in drain
        self.take_frauds: Callable[[list[KnownFraud]], None] = lambda _frauds: None
        self.error: BaseException | None = None
        self._stop = stop
        self._closed = False
        self._reconcile_at = time.monotonic()  # at the first pass
        self._thread = threading.Thread(target=self._work, name="feedback", daemon=True)
        self._thread.start()

    def drain(self, cache: BlocklistCache) -> None:
        """Called by the loop between batches: make what the worker blocklisted active
        in the loop's cache and hand the confirmed frauds to the feature state;
        re-raise a worker failure."""
        if self.error is not None:
            raise RuntimeError(f"feedback worker failed: {self.error}") from self.error
        while not self.blocked.empty():
            cache.add_local(self.blocked.get())
        while not self.frauds.empty():
            self.take_frauds(self.frauds.get())

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                self.wake.wait(LABELS_EVERY)
                self.wake.clear()
                if self._stop.is_set():
                    break
                if self.labels is not None:  # first: the loop may be waiting for them
                    self.labels_applied += self._apply_due(self.graph_ms)
                    self.joined = self.labels.joined()
                    self.labels_known_ms = self.labels.known_ms()
                self.annotator.flush()
                self._reconcile()
        except BaseException as exc:
            if not self._stop.is_set():
                log.exception("feedback worker failed")
                self.error = exc

    def _reconcile(self) -> None:
        """At the first pass and every :data:`RECONCILE_EVERY` seconds: the graph's
        blocked marks made to match the active blocklist (a mark lost in a crash after
        its PostgreSQL write is set again; a revoked entry's mark is cleared)."""
        if time.monotonic() < self._reconcile_at:
            return
        self._reconcile_at = time.monotonic() + RECONCILE_EVERY
        try:
            marked, cleared = self.health.retrying("neo4j", self._stop,
                                                   self.annotator.blocker.reconcile)
        except Exception as exc:  # not worth the stream: the marks are a view
            if transient(exc):
                raise  # stopping
            log.error("blocked marks not reconciled (%s); next try in %.0f s",
                      f"{type(exc).__name__}: {exc}"[:300], RECONCILE_EVERY)
            return
        if marked or cleared:
            log.warning("blocked marks reconciled with the blocklist: %d set, %d cleared",
                        marked, cleared)

    def _apply_due(self, graph_ms: float) -> int:
        """Apply the labels due at ``graph_ms``, then commit them; how many were applied."""
        assert self.labels is not None
        due = self.labels.take_due(graph_ms)
        if not due.offsets:
            return 0
        if due.labels:
            entries: list[NewEntry] = []
            frauds: list[KnownFraud] = []

            def apply(labels: list[PendingLabel]) -> None:
                listed, known = self.applier.apply(labels)
                entries.extend(listed)
                frauds.extend(known)

            self.health.retrying("postgres", self._stop, isolating, due.labels, apply,
                                 self._refused)
            self.blocked.put(entries)
            self.frauds.put(frauds)
        self.health.retrying("kafka", self._stop, self.labels.commit, due.offsets)
        return len(due.labels)

    def _refused(self, label: PendingLabel, exc: BaseException) -> None:
        """A label the store or the graph refuses for good: to the DLQ (``label_rejected``)
        and the stream goes on."""
        assert self.labels is not None
        log.error("label not applied (%s): on the DLQ", f"{type(exc).__name__}: {exc}"[:300])
        self.labels.dead_letter(label, "label_rejected", f"{type(exc).__name__}: {exc}"[:300])

    def close(self) -> None:
        """Stop the worker (after its current step), write what is queued, then close
        the labels consumer (the caller closes the connections).  Once; again: nothing."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=60)
        if self.error is None:
            self.annotator.flush()
        if self.labels is not None:
            self.labels.close()
