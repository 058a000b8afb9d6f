"""What the stream writes onto the graph beside the projection, off the hot path.

The loop hands over, between batches: ``blocked`` marks of the entities it
blocklisted (PostgreSQL has them already), its review/block decisions (onto their
Transaction nodes; with ``FRAUDGRAPH_GRAPH_DETAIL=flagged`` the nodes themselves,
which the projection then does not write) and the rings its sweep found
(``ring_id`` / ``ring_size`` on the members; new members blocklisted).
:meth:`GraphAnnotator.flush` writes them, in the daemon's worker thread: these
writes may wait on the projection's locks, and the stream must not.

A decision whose Transaction node (or, with flagged detail, card or site) is not
projected yet is tried again every
:data:`RETRY_EVERY` flushes, :data:`DECISION_TRIES` times (the decision itself is on
the topic and in PostgreSQL either way).

The queues live in memory, and the loop commits its offsets once PostgreSQL holds
the batch's flagged transactions, before the worker writes their decisions onto the
graph.  So the worker notes in PostgreSQL which decisions reached the graph
(``flagged_transactions.graphed_at``), and its first flush after a start writes
those a stopped daemon left, decided within :data:`RESUME_WINDOW_SECONDS` (with
flagged detail, the graph's only copy of those transactions).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from detectors.blocklist import NewEntry
from fraudgraph import metrics
from fraudgraph.blocking import Blocker
from fraudgraph.stream.health import Health, isolating
from graph import detect
from graph.projection import decision_row

log = logging.getLogger(__name__)

RETRY_EVERY = 10  # flushes between retries of decisions whose node is not there yet
DECISION_TRIES = 24  # retries (~2 min) a decision waits for its transaction's detail node
#: decisions waiting for their node, at most (beyond, the annotation is skipped)
MAX_UNDECIDED = 50_000
#: how far back (decided_at, wall clock) a start looks for decisions not on the graph
RESUME_WINDOW_SECONDS = 24 * 3600


class GraphAnnotator:
    """Queues filled by the loop (thread-safe), written by :meth:`flush`."""

    def __init__(self, driver: Any, blocker: Blocker, health: Health,
                 stop: threading.Event, with_detail: bool = False) -> None:
        """``with_detail``: write each decision's Transaction node too (flagged detail)."""
        self.driver, self.blocker, self.health, self.stop = driver, blocker, health, stop
        self.write_decisions = detect.record_flagged if with_detail else detect.set_decisions
        self.to_mark: queue.Queue[list[NewEntry]] = queue.Queue()
        self.to_record: queue.Queue[list[dict[str, Any]]] = queue.Queue()
        self.to_ring: queue.Queue[tuple[list[dict[str, Any]], list[NewEntry]]] = queue.Queue()
        self.undecided: dict[str, tuple[dict[str, Any], int]] = {}  # waiting for projection
        self.flushes = 0
        self.resumed = 0  # decisions a stopped daemon left, written by this one

    def mark_blocked(self, entries: list[NewEntry]) -> None:
        """Set ``blocked`` on these entities' nodes (at the next flush)."""
        self.to_mark.put(entries)

    def record_decisions(self, rows: list[dict[str, Any]]) -> None:
        """Put review/block decisions (the transaction's detail row with decision,
        score and reasons) on their nodes."""
        self.to_record.put(rows)

    def record_rings(self, members: list[dict[str, Any]], entries: list[NewEntry]) -> None:
        """Mark ring members (``ring_id``, ``ring_size``) and blocklist the new ones."""
        self.to_ring.put((members, entries))

    def flush(self) -> None:
        """Write everything queued, retrying while a service is away (until stopped);
        rows a service refuses for good are isolated, logged and counted, the rest
        written.  A sweep's ring marks are written whole, even when it found none: the
        write also clears the marks of users no longer in a ring.  The first flush
        first queues the decisions a stopped daemon left off the graph."""
        if self.flushes == 0:
            self._resume()
        while not self.to_ring.empty():
            members, listed = self.to_ring.get()
            self.health.retrying("neo4j", self.stop, detect.save_rings, self.driver, members)
            self._write("postgres", listed, lambda rows: self.blocker.block(rows, "ring-sweep"))
        self._write("neo4j", _drain(self.to_mark), self.blocker.mark)
        self.flushes += 1
        self._decisions(_drain(self.to_record), retry=self.flushes % RETRY_EVERY == 0)

    def _resume(self) -> None:
        left = self.health.retrying("postgres", self.stop, self.blocker.store.ungraphed,
                                    RESUME_WINDOW_SECONDS, MAX_UNDECIDED)
        if left:
            log.info("%d flagged decisions from before this start are not on the graph "
                     "yet: writing them", len(left))
            self.to_record.put([decision_row(f) for f in left])
            self.resumed = len(left)

    def _write(self, service: str, rows: list[Any], write: Callable[[list[Any]], Any]) -> None:
        self.health.retrying(service, self.stop, isolating, rows, write, _dropped)

    def _decisions(self, fresh: list[dict[str, Any]], retry: bool) -> None:
        rows = fresh + ([row for row, _ in self.undecided.values()] if retry else [])
        if not rows:
            return
        found: set[str] = set()
        self._write("neo4j", rows, lambda part: found.update(
            self.write_decisions(self.driver, part)))
        if found:  # a stop before this leaves them to the next start
            self.health.retrying("postgres", self.stop, self.blocker.store.mark_graphed,
                                 sorted(found))
        for row in fresh:  # not projected yet: tried again every RETRY_EVERY flushes
            if row["id"] not in found and len(self.undecided) < MAX_UNDECIDED:
                self.undecided.setdefault(row["id"], (row, 0))
        if retry:
            self.undecided = {key: (row, tries + 1) for key, (row, tries) in
                              self.undecided.items()
                              if key not in found and tries + 1 < DECISION_TRIES}


def _dropped(row: Any, exc: BaseException) -> None:
    """A graph annotation (or ring entry) refused for good: logged and counted; the
    record it annotates is in PostgreSQL and on its topic."""
    metrics.DETECTOR_REJECTED.labels("annotation_rejected").inc()
    log.error("graph annotation not written (%s): %r", f"{type(exc).__name__}: {exc}"[:300],
              row if not isinstance(row, NewEntry) else row.key)


def _drain(q: queue.Queue[list[Any]]) -> list[Any]:
    items: list[Any] = []
    while not q.empty():
        items += q.get()
    return items
