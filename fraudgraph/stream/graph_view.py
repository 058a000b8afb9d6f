"""The daemon's view of the graph, as of each transaction's time.

Every graph check of a transaction at ``t`` sees the graph as it was at
``known = t - graph.as_of_lag`` (:mod:`detectors.graph_checks`).  For that to hold
whatever the projection, the label worker and the ring sweep happen to have done,
:meth:`GraphView.facts` first makes sure, for the batch's newest ``known``:

1. the graph holds every transaction up to it: per partition of the transactions
   topic, some projection group has written an event time at or past it, or the
   whole partition (``cypher/projection_progress.cypher``);
2. every label reported up to it is applied (``Feedback.labels_known_ms``) and its
   blocklist entry is in the loop's cache;
3. the ring sweep has run as of the last sweep boundary at or before it (rings are
   swept at multiples of ``rings.sweep_every`` in event time, so a transaction sees
   the rings of the boundary before its ``known``, whatever the batching).

The projection's cursors also say which ``FRAUDGRAPH_GRAPH_DETAIL`` it writes with;
a daemon whose own setting differs stops with an error that says so (with
``flagged`` the daemon writes the flagged transactions' nodes, with ``all`` the
projection: a mismatch leaves them unwritten, or writes them twice).

It waits for 1 and 2 at most ``wait_seconds`` (None: as long as it takes, for
backtests); after that it decides on what the graph holds, logs it and sets
``fraudgraph_detector_graph_behind``, and later batches do not wait until the
graph has caught up: a stopped projector slows the stream once, it does not stop
it (a lagging graph is stale data, not an outage: /healthz stays ok).  In a sparse
stream a batch may wait for the projector to write the batch's own transactions
(up to its batch timeout).  Then it reads the batch's facts (four queries).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from detectors.blocklist import BlocklistCache
from detectors.config import DetectorConfig
from detectors.graph_checks import BatchFacts, known_ms
from fraudgraph import metrics
from fraudgraph.errors import ConfigError
from fraudgraph.stream.feedback import Feedback
from fraudgraph.stream.ring_sweep import RingSweep
from graph import detect
from ingest.label_source import INFINITY
from ingest.source import TransactionSource
from ingest.transaction import Transaction

log = logging.getLogger(__name__)
POLL_SECONDS = 0.02  # between looks at the projection's progress while waiting
ENDS_EVERY_SECONDS = 1.0  # end offsets of the topic's partitions: asked at most this often


class GraphView:
    """The graph facts of a batch as of each transaction's time (see the module)."""

    def __init__(self, driver: Any, source: TransactionSource, feedback: Feedback,
                 rings: RingSweep, config: DetectorConfig, topic: str,
                 wait_seconds: float | None, detail: str = "all") -> None:
        """``detail``: this daemon's ``FRAUDGRAPH_GRAPH_DETAIL`` (the projection's must
        be the same)."""
        self.driver, self.source, self.feedback, self.rings = driver, source, feedback, rings
        self.config, self.topic, self.wait_seconds = config, topic, wait_seconds
        self.detail = detail
        graph, rules = config.graph, config.rules
        device, ip = rules.shared_device, rules.shared_ip
        self.thresholds = detect.Thresholds(
            graph.shared_device_cards, graph.shared_device_users,
            graph.compromised_site_min_frauds, graph.compromised_site_window_ms,
            graph.gnn_threshold if graph.gnn_enabled else 2.0,  # 2: never
            device.max_cards if device.enabled else detect.NEVER,
            device.max_users if device.enabled else detect.NEVER,
            ip.max_users if ip.enabled else detect.NEVER)
        self._ends: dict[int, int] = {}
        self._ends_at = -ENDS_EVERY_SECONDS
        self._idle_at = -ENDS_EVERY_SECONDS
        self.waited_seconds = 0.0
        #: of which waiting for the projection, and for the label worker
        self.waited_on = {"projection": 0.0, "labels": 0.0}
        self.behind = 0  # batches decided before the graph had caught up
        self.behind_since: float | None = None  # a wait ran out; not caught up since

    def facts(self, txs: list[Transaction], cache: BlocklistCache,
              stop: threading.Event) -> BatchFacts:
        """The batch's graph facts, once the graph is complete up to its newest known time
        (or the wait is over); may raise the driver's errors (the caller retries)."""
        graph = self.config.graph
        newest = max(known_ms(tx, graph) for tx in txs)
        oldest = min(known_ms(tx, graph) for tx in txs)
        if self.wait_until(newest, cache, stop, time.monotonic()):
            self.rings.sweep(newest, cache)  # only on a graph that holds the boundary's time
        facts = detect.batch_features(self.driver, list({t.card_id for t in txs}),
                                      list({t.device_id for t in txs if t.device_id}),
                                      list({t.site_id for t in txs}), newest, oldest,
                                      self.thresholds,
                                      list({t.ip_address for t in txs if t.ip_address}))
        users = {user for card in facts.cards.values() for user, _ in card.holders}
        users.update(tx.user_id for tx in txs)  # a ring member paying with a card of its own
        visible = {u: self.rings.visible_ms[u] for u in users if u in self.rings.visible_ms}
        return dataclasses.replace(facts, ring_visible_ms=visible)

    def idle(self) -> None:
        """Between batches when the stream is idle: tell the label worker how far the
        graph is (at most once a second), so labels are applied meanwhile; a partition
        counts whole by a look at its end taken now (a label is applied once the graph
        holds its transaction)."""
        if time.monotonic() - self._idle_at >= ENDS_EVERY_SECONDS:
            self._idle_at = time.monotonic()
            self.feedback.graph_ms = self.complete_ms(self._idle_at)
            self.feedback.wake.set()

    def wait_until(self, at_ms: int, cache: BlocklistCache, stop: threading.Event,
                   consumed: float) -> bool:
        """Wait until the graph and the labels are complete up to ``at_ms``; True if they
        are, False if the wait ran out (or the daemon is stopping).  ``consumed``: a
        monotonic time after the batch was consumed (see :meth:`complete_ms`).  Once a
        wait has run out, later batches look once without waiting until the graph has
        caught up: a stopped projector slows one batch, not every batch."""
        started = mark = time.monotonic()
        waiting_on: str | None = None
        while True:
            graph_ms = self.complete_ms(consumed)
            self.feedback.graph_ms = graph_ms
            self.feedback.wake.set()
            labels_ms = self.feedback.labels_known_ms
            self.feedback.drain(cache)  # label entries applied so far, before deciding
            now = time.monotonic()
            if waiting_on is not None:  # the last look's wait, to what it waited for
                self.waited_on[waiting_on] += now - mark
                metrics.DETECTOR_GRAPH_WAIT_ON.labels(waiting_on).inc(now - mark)
            mark, waiting_on = now, "projection" if graph_ms < at_ms else "labels"
            waited = now - started
            if graph_ms >= at_ms and labels_ms >= at_ms:
                self._waited(waited)
                if self.behind_since is not None:
                    log.warning("the graph has caught up with the stream's time")
                    self.behind_since = None
                    metrics.DETECTOR_GRAPH_BEHIND.set(0)
                return True
            out_of_time = self.wait_seconds is not None and waited >= self.wait_seconds
            if stop.is_set() or out_of_time or self.behind_since is not None:
                self._waited(waited)
                self.behind += 1
                if self.behind_since is None:
                    self.behind_since = time.monotonic()
                    metrics.DETECTOR_GRAPH_BEHIND.set(1)
                    what = "the projection" if graph_ms < at_ms else "the labels"
                    log.warning("%s is behind the stream's time (waited %.1f s): deciding on "
                                "what the graph holds until it catches up", what, waited)
                return False
            stop.wait(POLL_SECONDS)

    def _waited(self, seconds: float) -> None:
        self.waited_seconds += seconds
        metrics.DETECTOR_GRAPH_WAIT.inc(seconds)

    def complete_ms(self, consumed: float | None = None) -> float:
        """The event time up to which the graph holds every transaction of the topic
        (inf: all of it).

        A partition counts up to the newest event time projected from it, or whole if
        the projection has reached its end.  Its end is looked up at most once a second,
        except that with ``consumed`` (a monotonic time after the batch in hand was
        consumed) a partition counts whole only by a look taken after it: an older end
        may lie before the batch's own transactions, and before those published beside
        them in other partitions."""
        progress = detect.projection_progress(self.driver, self.topic)
        self._same_detail(progress)
        if time.monotonic() - self._ends_at >= ENDS_EVERY_SECONDS:
            self._look_at_ends()
        complete = INFINITY
        for partition in sorted(self._ends):
            done = progress.get(partition)
            whole = self._whole(partition, done)
            if whole and consumed is not None and self._ends_at < consumed:
                self._look_at_ends()  # is it still?
                whole = self._whole(partition, done)
            if whole:
                continue
            if done is None:
                return -INFINITY
            # another transaction of the same time may still be on its way: one ms less
            complete = min(complete, done.event_ms - 1 if done.event_ms is not None
                           else -INFINITY)
        return complete

    def _same_detail(self, progress: dict[int, detect.PartitionProgress]) -> None:
        other = sorted({p.detail for p in progress.values() if p.detail is not None}
                       - {self.detail})
        if other:
            raise ConfigError(
                f"the projection of topic {self.topic!r} writes with "
                f"FRAUDGRAPH_GRAPH_DETAIL={other[0]} and this daemon runs with "
                f"{self.detail}: flagged transactions' nodes would be "
                f"{'written by neither' if self.detail == 'all' else 'written twice'}; "
                f"give the projector and the daemon the same FRAUDGRAPH_GRAPH_DETAIL "
                f"and start them again")

    def _look_at_ends(self) -> None:
        self._ends, self._ends_at = self.source.end_offsets(), time.monotonic()

    def _whole(self, partition: int, done: detect.PartitionProgress | None) -> bool:
        """The projection holds all of ``partition`` as of the last look at its end."""
        end = self._ends.get(partition, 0)
        return end <= 0 or (done is not None and done.offset >= end - 1)
