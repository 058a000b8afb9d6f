"""What the daemon does beside its micro-batches: apply fraud labels, record rings.

Labels (``fraud-labels``, own consumer group ``<group>-labels``), per poll: once
the graph holds a label's transaction (the projection has passed its event time),
store it in PostgreSQL (upsert), mark confirmed fraud in Neo4j once per
transaction (card, user, device with ``fraud_reported_ms``; the site's fraud
count; the FraudLabel node with its report time), blocklist the card (source
``label``, counting from the report time plus the graph's as-of lag), then
commit.  Labels are written as soon as they can be, whatever the stream's time:
every reader filters them by report time (as of each transaction), and
:attr:`Feedback.labels_known_ms` tells the loop up to which report time every
label is applied, so it never decides a transaction before the labels it may see.

Rings found by the loop's sweep (``fraudgraph.graph_view``) are written here:
``ring_id`` / ``ring_size`` on the members, and the members blocklisted (source
``cypher``).

One worker thread with its own PostgreSQL connection, so a write waiting on the
projection's locks never stalls the stream; what it blocklists reaches the
loop's cache between batches (:meth:`Feedback.drain`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from detectors.blocklist import BlocklistCache, LabelRow, NewEntry
from detectors.config import DetectorConfig
from detectors.pipeline import SINCE
from fraudgraph import metrics
from fraudgraph.settings import Settings
from graph import detect
from graph.driver import Neo4jError, ServiceUnavailable
from ingest import kafka
from ingest.dlq import dlq_record
from ingest.labels import decode_label
from ingest.publish import Publisher, PublishError
from ingest.transaction import DecodeError, parse_event_ms
from storage import InterfaceError, OperationalError
from storage.blocklist import BlocklistStore

log = logging.getLogger(__name__)
T = TypeVar("T")
INFINITY = float("inf")
RETRYABLE: tuple[type[BaseException], ...] = (
    ServiceUnavailable, Neo4jError, OperationalError, InterfaceError, PublishError,
    kafka.KafkaException)
MAX_PENDING_LABELS = 200_000  # labels waiting for the stream's event time; then stop reading
LABELS_EVERY = 0.5  # seconds between label polls of the worker
RETRY_EVERY = 10  # worker passes between retries of decisions whose node is not there yet
DECISION_TRIES = 24  # retries (~2 min) a decision waits for its transaction's detail node
#: decisions waiting for their node, at most (beyond, the annotation on the node is
#: skipped; the decision itself is on the topic and in PostgreSQL)
MAX_UNDECIDED = 50_000
LOG_EVERY = 30.0  # seconds between repeated outage log lines
#: Services failing right now (for /healthz; the gauge carries the same for Prometheus).
DEGRADED: set[str] = set()


_logged_at: dict[str, float] = {}


def service_down(service: str, problem: str, doing: str) -> None:
    """Mark ``service`` degraded (health, gauge); log it once per ``LOG_EVERY``."""
    metrics.DETECTOR_DEGRADED.labels(service).set(1)
    DEGRADED.add(service)
    if time.monotonic() - _logged_at.get(service, -LOG_EVERY) >= LOG_EVERY:
        log.warning("%s unavailable (%s); %s", service, problem, doing)
        _logged_at[service] = time.monotonic()


def service_up(service: str) -> None:
    """Clear the degraded mark of ``service`` (logged when there was one)."""
    if service in DEGRADED:
        log.warning("%s is back", service)
        DEGRADED.discard(service)
        _logged_at.pop(service, None)
    metrics.DETECTOR_DEGRADED.labels(service).set(0)


def _problem(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def _failed(exc: BaseException, default: str) -> str:
    """The service an error came from (an action may touch two), else ``default``."""
    if isinstance(exc, Neo4jError | ServiceUnavailable):
        return "neo4j"
    if isinstance(exc, OperationalError | InterfaceError):
        return "postgres"
    if isinstance(exc, kafka.KafkaException | PublishError):
        return "kafka"
    return default


def attempt(service: str, action: Callable[[], Any]) -> bool:
    """Run ``action`` once; on a service failure mark ``service`` degraded, log (once per
    ``LOG_EVERY``) and return False, so the caller goes on with what it has."""
    try:
        action()
    except RETRYABLE as exc:
        service_down(_failed(exc, service), _problem(exc), "going on with the last known state")
        return False
    service_up(service)
    return True


def retrying(service: str, stop: threading.Event, action: Callable[..., T], *args: Any) -> T:
    """Run ``action(*args)`` until it succeeds, backing off while ``service`` is away.

    Logs the outage once per ``LOG_EVERY`` seconds and sets the degraded gauge;
    gives up (re-raises) only when ``stop`` is set.
    """
    delay = 0.25
    while True:
        try:
            result = action(*args)
        except RETRYABLE as exc:
            service_down(_failed(exc, service), _problem(exc), "retrying with backoff")
            if stop.is_set():
                raise
            stop.wait(delay)
            delay = min(delay * 2, 10.0)
            continue
        service_up(service)
        return result


def blocklist_entities(store: BlocklistStore, driver: Any, entries: list[NewEntry],
                       actor: str, cache: BlocklistCache | None = None) -> None:
    """Put entities on the blocklist (PostgreSQL upsert, then ``blocked`` on their
    Neo4j nodes) and, given a cache, make them active in this process at once."""
    if not entries:
        return
    store.upsert(entries, actor=actor)
    if cache is not None:
        cache.add_local(entries)
    detect.mark_blocked(driver, [(e.entity_type, e.entity_id, e.reason, e.source)
                                 for e in entries])


@dataclass(frozen=True)
class _Pending:
    """A label read and not applied yet: applied once the graph holds ``ready_ms``."""

    ready_ms: int
    reported_ms: int
    offset: int
    row: LabelRow | None  # None: undecodable (already sent to the DLQ)
    event_ms: int | None = None


class Feedback:
    """Labels and ring sweeps, in a worker thread with its own PostgreSQL connection:
    their writes wait on the projection's locks at times, and the stream must not.

    The loop tells it how far the graph is complete (``graph_ms``), reads how far the
    labels are applied (``labels_known_ms``) and, between batches, takes the entities
    it blocklisted into the in-process cache (:meth:`drain`).
    """

    def __init__(self, settings: Settings, config: DetectorConfig, group: str, driver: Any,
                 store: BlocklistStore, *, from_beginning: bool, labels: bool) -> None:
        self.settings, self.config, self.driver, self.store = settings, config, driver, store
        self.consumer = None
        if labels:
            self.consumer = kafka.consumer(settings.kafka.bootstrap, f"{group}-labels")
            if from_beginning:
                self.consumer.subscribe([settings.topics.labels],
                                        on_assign=kafka.rewind_on_assign)
            else:
                self.consumer.subscribe([settings.topics.labels])
        self.dlq = Publisher(settings.kafka.bootstrap)
        #: written by the loop: every transaction up to this event time is in the graph
        self.graph_ms = -INFINITY
        #: written here: every label reported up to this time is applied (and its
        #: blocklist entry queued for the loop); -inf before the consumer has partitions
        self.labels_known_ms = INFINITY if self.consumer is None else -INFINITY
        self.last_reported: dict[tuple[str, int], int] = {}
        self.wake = threading.Event()  # the loop moved graph_ms: look at the labels now
        self.joined = self.consumer is None  # the labels consumer has its partitions
        self.labels_applied = 0
        self.rings_found = 0
        self.to_ring: queue.Queue[tuple[list[dict[str, Any]], list[NewEntry]]] = queue.Queue()
        self.blocked: queue.Queue[list[NewEntry]] = queue.Queue()  # for the loop's cache
        self.to_mark: queue.Queue[list[NewEntry]] = queue.Queue()  # from the loop, for Neo4j
        self.to_record: queue.Queue[list[dict[str, Any]]] = queue.Queue()
        self.undecided: dict[str, tuple[dict[str, Any], int]] = {}  # waiting for projection
        self.passes = 0
        self.error: BaseException | None = None
        #: (topic, partition) -> FIFO of labels read, not applied yet (None: undecodable)
        self.pending: dict[tuple[str, int], deque[_Pending]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="feedback", daemon=True)
        self._thread.start()

    def drain(self, cache: BlocklistCache) -> None:
        """Called by the loop between batches: make what the worker blocklisted active
        in the loop's cache; re-raise a worker failure."""
        if self.error is not None:
            raise RuntimeError(f"feedback worker failed: {self.error}") from self.error
        while not self.blocked.empty():
            cache.add_local(self.blocked.get())

    def mark_blocked(self, entries: list[NewEntry]) -> None:
        """Called by the loop: set ``blocked`` on these entities' nodes, in the worker."""
        self.to_mark.put(entries)

    def record_decisions(self, rows: list[dict[str, Any]]) -> None:
        """Called by the loop: put review/block decisions on their Transaction nodes, in
        the worker (a transaction the projection has not written yet is tried again
        every ``RETRY_EVERY`` passes, ``DECISION_TRIES`` times)."""
        self.to_record.put(rows)

    def record_rings(self, members: list[dict[str, Any]], entries: list[NewEntry]) -> None:
        """Called by the loop after a sweep: mark the members (``ring_id``, ``ring_size``)
        and blocklist the new ones, in the worker."""
        self.to_ring.put((members, entries))

    def _mark_queued(self) -> None:
        while not self.to_ring.empty():
            members, listed = self.to_ring.get()
            retrying("neo4j", self._stop, detect.save_rings, self.driver, members)
            retrying("postgres", self._stop, blocklist_entities, self.store, self.driver,
                      listed, "ring-sweep")
        entries: list[NewEntry] = []
        while not self.to_mark.empty():
            entries += self.to_mark.get()
        if entries:
            retrying("neo4j", self._stop, detect.mark_blocked, self.driver,
                     [(e.entity_type, e.entity_id, e.reason, e.source) for e in entries])
        fresh: list[dict[str, Any]] = []
        while not self.to_record.empty():
            fresh += self.to_record.get()
        self.passes += 1
        retry = self.passes % RETRY_EVERY == 0
        rows = fresh + ([row for row, _ in self.undecided.values()] if retry else [])
        if rows:
            found = retrying("neo4j", self._stop, detect.set_decisions, self.driver, rows)
            for row in fresh:  # not projected yet: tried again every RETRY_EVERY passes
                if row["id"] not in found and len(self.undecided) < MAX_UNDECIDED:
                    self.undecided.setdefault(row["id"], (row, 0))
            if retry:
                self.undecided = {key: (row, tries + 1) for key, (row, tries) in
                                  self.undecided.items()
                                  if key not in found and tries + 1 < DECISION_TRIES}

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                self.wake.wait(LABELS_EVERY)
                self.wake.clear()
                if self._stop.is_set():
                    break
                self._mark_queued()
                if self.consumer is not None:
                    self.labels_applied += self.poll_labels(self._stop, self.graph_ms)
                    self.joined = bool(self.consumer.assignment())
                    self.labels_known_ms = self._labels_known()
        except BaseException as exc:
            if not self._stop.is_set():
                log.exception("feedback worker failed")
                self.error = exc

    def poll_labels(self, stop: threading.Event, graph_ms: float) -> int:
        """Take new label messages into per-partition queues, then apply (in arrival
        order) those whose transaction the graph holds: event time (report time when
        the label has none) at or before ``graph_ms``."""
        assert self.consumer is not None
        if sum(len(q) for q in self.pending.values()) < MAX_PENDING_LABELS:
            for msg in self.consumer.consume(1000, 0.0):
                if msg.error():
                    raise kafka.KafkaException(msg.error())
                self._take(msg)
        due: list[_Pending] = []
        commit: list[kafka.TopicPartition] = []
        for (topic, partition), waiting in self.pending.items():
            last = None
            while waiting and (waiting[0].row is None or waiting[0].ready_ms <= graph_ms):
                label = waiting.popleft()
                last = label.offset
                if label.row is not None:
                    due.append(label)
            if last is not None:
                commit.append(kafka.TopicPartition(topic, partition, last + 1))
        if not commit:
            return 0
        if due:
            retrying("postgres", stop, self._apply, due)
        retrying("kafka", stop, self.dlq.flush)
        retrying("kafka", stop, self._commit_labels, commit)
        return len(due)

    def _labels_known(self) -> float:
        """The report time up to which every label is applied: per assigned partition,
        the first label still waiting, else (read to the end) no limit, else the last
        label read; the lowest over the partitions (-inf before any assignment)."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        if not assigned:
            return -INFINITY
        known = INFINITY
        for tp in self.consumer.position(assigned):
            where = (tp.topic, tp.partition)
            waiting = self.pending.get(where)
            # one ms less: a label of the same report time may be waiting or unread
            if waiting:
                known = min(known, waiting[0].reported_ms - 1)
            elif not self._read_to_end(tp):
                known = min(known, self.last_reported.get(where, -INFINITY) - 1)
        return known

    def _read_to_end(self, tp: kafka.TopicPartition) -> bool:
        """Whether this partition is read to its end (False while Kafka cannot say).
        ``tp.offset`` is the position; before anything was read since the assignment
        it is unknown, and the group's committed offset says where reading resumes."""
        assert self.consumer is not None
        try:
            high = self.consumer.get_watermark_offsets(tp, cached=True)
            if not high or high[1] is None or high[1] < 0:
                high = self.consumer.get_watermark_offsets(tp, timeout=2.0)
            position = tp.offset
            if position < 0:
                position = self.consumer.committed([tp], timeout=2.0)[0].offset
        except kafka.KafkaException:
            return False
        return high[1] == 0 or (position >= 0 and position >= high[1])

    def _take(self, msg: Any) -> None:
        raw = msg.value() or b""
        where = (msg.topic() or "", msg.partition() or 0)
        waiting = self.pending.setdefault(where, deque())
        try:
            label, event_ms = decode_label(raw)
            reported_ms = parse_event_ms(label.reported_at)
        except DecodeError as error:
            key, value = dlq_record(raw, msg.key(), error, where[0], where[1], msg.offset() or 0)
            self.dlq.send(self.settings.topics.dlq, key, value)
            metrics.DETECTOR_REJECTED.labels(error.reason).inc()
            waiting.append(_Pending(0, 0, msg.offset() or 0, None))  # committed with its neighbours
            return
        row = LabelRow(label.transaction_id, label.label, label.source, label.reported_at,
                       label.card_id, label.user_id)
        ready_ms = reported_ms if event_ms is None else min(event_ms, reported_ms)
        waiting.append(_Pending(ready_ms, reported_ms, msg.offset() or 0, row, event_ms))
        self.last_reported[where] = reported_ms

    def _commit_labels(self, offsets: list[kafka.TopicPartition]) -> None:
        assert self.consumer is not None
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def _apply(self, labels: list[_Pending]) -> None:
        rows = [label.row for label in labels if label.row is not None]
        self.store.record_labels(rows)
        fraud = [{"transaction_id": p.row.transaction_id, "card_id": p.row.card_id,
                  "user_id": p.row.user_id, "site_id": p.row.site_id, "event_ms": p.event_ms,
                  "reported_ms": p.reported_ms, "source": p.row.source}
                 for p in labels if p.row is not None and p.row.label == "fraud"]
        for row in rows:
            metrics.DETECTOR_LABELS.labels(row.label).inc()
        if not fraud:
            return
        applied = detect.label_fraud(self.driver, fraud)  # marks each label once
        # Blocklist from every label, not only those marked just now: a label replayed
        # after a crash between the marks and the blocklist write still lists its card.
        cards: dict[str, str] = {str(f["transaction_id"]): str(f["card_id"])
                                 for f in fraud if f["card_id"]}
        for a in applied:
            if a["card_id"]:
                cards.setdefault(a["transaction_id"], a["card_id"])
        # counts from when a transaction's graph view may see the label (its report time
        # plus the as-of lag), so the stream sees it at the same point whatever the timing
        since = {p.row.transaction_id: p.reported_ms + self.config.graph.as_of_lag_ms
                 for p in labels if p.row is not None}
        entries = [NewEntry("card", card_id, "confirmed_fraud", "label", 1.0,
                            {"transaction_id": transaction_id, SINCE: since[transaction_id]},
                            self.config.blocklist.ttl_ms // 1000)
                   for transaction_id, card_id in cards.items()]
        blocklist_entities(self.store, self.driver, entries, "labels")
        self.blocked.put(entries)

    def close(self) -> None:
        """Stop the worker (after its current step), mark what is queued, then close."""
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=60)
        if self.error is None:
            self._mark_queued()
        if self.consumer is not None:
            self.consumer.close()
        self.store.close()
