"""What the daemon does between micro-batches: apply fraud labels, sweep for rings.

Labels (``fraud-labels``, own consumer group ``<group>-labels``), per poll:
store them in PostgreSQL (upsert), mark confirmed fraud in Neo4j once per
transaction (card, user, device; the site's fraud count, which drives the
compromised-site check), blocklist the card (source ``label``), then commit.

Ring sweep, every ``rings.sweep_every``: read the user links from Neo4j, find
connected groups of at least ``rings.min_users`` users (networkx), record
``ring_id`` / ``ring_size`` on the members and blocklist them (source
``cypher``).

Both run in one worker thread with its own PostgreSQL connection, so a
whole-graph read or a write waiting on the projection's locks never stalls the
stream; what they blocklist reaches the loop's cache between batches.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from detectors.blocklist import (
    BlocklistCache,
    BlocklistStore,
    InterfaceError,
    LabelRow,
    NewEntry,
    OperationalError,
)
from detectors.config import DetectorConfig
from detectors.rings import find_rings
from fraudgraph import metrics
from fraudgraph.settings import Settings
from graph import detect
from graph.driver import Neo4jError, ServiceUnavailable
from ingest import kafka
from ingest.dlq import dlq_record
from ingest.labels import decode_label
from ingest.publish import Publisher, PublishError
from ingest.transaction import DecodeError, parse_event_ms

log = logging.getLogger(__name__)
T = TypeVar("T")
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


class Feedback:
    """Labels and ring sweeps, in a worker thread with its own PostgreSQL connection:
    their writes wait on the projection's locks at times, and the stream must not.

    The loop tells it how far the stream is (``stream_ms``) and, between batches,
    takes the entities it blocklisted into the in-process cache (:meth:`drain`).
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
        self.stream_ms = 0  # written by the loop: the stream's event-time watermark
        self.joined = self.consumer is None  # the labels consumer has its partitions
        self.labels_applied = 0
        self.rings_found = 0
        self.ring_members_listed: set[str] = set()  # not re-listed by every sweep
        self.blocked: queue.Queue[list[NewEntry]] = queue.Queue()  # for the loop's cache
        self.to_mark: queue.Queue[list[NewEntry]] = queue.Queue()  # from the loop, for Neo4j
        self.to_record: queue.Queue[list[dict[str, Any]]] = queue.Queue()
        self.undecided: dict[str, tuple[dict[str, Any], int]] = {}  # waiting for projection
        self.passes = 0
        self.error: BaseException | None = None
        #: (topic, partition) -> FIFO of (reported_ms | None, offset, (row, event_ms) | None)
        self.pending: dict[tuple[str, int], deque[tuple[int | None, int, Any]]] = {}
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

    def _mark_queued(self) -> None:
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
        next_sweep = time.monotonic() + self.config.rings.sweep_every_ms / 1000
        try:
            while not self._stop.wait(LABELS_EVERY):
                self._mark_queued()
                if self.consumer is not None:
                    self.labels_applied += self.poll_labels(self._stop, self.stream_ms)
                    self.joined = bool(self.consumer.assignment())
                if self.config.graph.enabled and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.config.rings.sweep_every_ms / 1000
                    retrying("neo4j", self._stop, self.sweep_rings)
        except BaseException as exc:
            if not self._stop.is_set():
                log.exception("feedback worker failed")
                self.error = exc

    def poll_labels(self, stop: threading.Event, watermark_ms: int) -> int:
        """Take new label messages into per-partition queues, then apply (in arrival
        order) those reported at or before ``watermark_ms``: the newest event time the
        daemon has seen.  So a backtest applies a label when its stream reaches the
        report time, as live traffic would, and never sees the future."""
        assert self.consumer is not None
        if sum(len(q) for q in self.pending.values()) < MAX_PENDING_LABELS:
            for msg in self.consumer.consume(1000, 0.0):
                if msg.error():
                    raise kafka.KafkaException(msg.error())
                self._take(msg)
        due: list[tuple[LabelRow, int | None]] = []
        commit: list[kafka.TopicPartition] = []
        for (topic, partition), waiting in self.pending.items():
            last = None
            while waiting and (waiting[0][0] is None or waiting[0][0] <= watermark_ms):
                _, offset, row = waiting.popleft()
                last = offset
                if row is not None:
                    due.append(row)
            if last is not None:
                commit.append(kafka.TopicPartition(topic, partition, last + 1))
        if not commit:
            return 0
        if due:
            retrying("postgres", stop, self._apply, due)
        retrying("kafka", stop, self.dlq.flush)
        retrying("kafka", stop, self._commit_labels, commit)
        return len(due)

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
            waiting.append((None, msg.offset() or 0, None))  # committed with its neighbours
            return
        row = LabelRow(label.transaction_id, label.label, label.source, label.reported_at,
                       label.card_id, label.user_id)
        waiting.append((reported_ms, msg.offset() or 0, (row, event_ms)))

    def _commit_labels(self, offsets: list[kafka.TopicPartition]) -> None:
        assert self.consumer is not None
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def _apply(self, rows: list[tuple[LabelRow, int | None]]) -> None:
        self.store.record_labels([row for row, _ in rows])
        fraud = [{"transaction_id": r.transaction_id, "card_id": r.card_id,
                  "user_id": r.user_id, "event_ms": ms, "source": r.source}
                 for r, ms in rows if r.label == "fraud"]
        for r, _ in rows:
            metrics.DETECTOR_LABELS.labels(r.label).inc()
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
        entries = [NewEntry("card", card_id, "confirmed_fraud", "label", 1.0,
                            {"transaction_id": transaction_id},
                            self.config.blocklist.ttl_ms // 1000)
                   for transaction_id, card_id in cards.items()]
        blocklist_entities(self.store, self.driver, entries, "labels")
        self.blocked.put(entries)

    def sweep_rings(self) -> int:
        """Find the rings, mark them in Neo4j, blocklist their members; return the count."""
        rings_config = self.config.rings
        links = [link for link in detect.ring_links(self.driver, rings_config.max_device_users)
                 if link[0] in rings_config.link_through]
        rings = find_rings(links, rings_config.min_users)
        members: list[dict[str, Any]] = [
            {"id": user, "ring_id": ring.ring_id, "ring_size": len(ring.users)}
            for ring in rings for user in ring.users]
        detect.save_rings(self.driver, members)
        self.rings_found = len(rings)
        metrics.DETECTOR_RINGS.set(len(rings))
        log.info("ring sweep: %d rings, %d members", len(rings), len(members))
        entries = [NewEntry("user", m["id"], "fraud_ring", "cypher", 0.9,
                            {"ring_id": m["ring_id"], "ring_size": m["ring_size"]},
                            self.config.blocklist.ttl_ms // 1000)
                   for m in members if "user" in rings_config.flag
                   and m["id"] not in self.ring_members_listed]
        blocklist_entities(self.store, self.driver, entries, "ring-sweep")
        self.blocked.put(entries)
        self.ring_members_listed.update(e.entity_id for e in entries)
        return len(rings)

    def close(self) -> None:
        """Stop the worker (after its current step), mark what is queued, then close."""
        self._stop.set()
        self._thread.join(timeout=60)
        if self.error is None:
            self._mark_queued()
        if self.consumer is not None:
            self.consumer.close()
        self.store.close()
