"""The streaming detector daemon (`fraudgraph run`): transactions → decisions.

Commit order, per micro-batch (at-least-once delivery, idempotent effects):

1. consume up to ``batch_size`` messages and decode them; bad ones are queued
   for the dead-letter topic (``TransactionSource.poll_batch``);
2. refresh the in-process blocklist view (at most one PostgreSQL query per
   ``refresh_seconds``, never one per transaction, and at once when a change
   was notified; while PostgreSQL is away the last view serves and the service
   is reported degraded);
3. wait until the graph holds everything up to the batch's time (the projection's
   cursors; applied labels; the ring sweep), then read graph facts for the batch's
   cards, devices and sites as of each transaction's time (three Neo4j queries per
   batch; ``fraudgraph.graph_view``);
4. decide every transaction (pure: rules, graph checks, combiner);
5. queue ``decisions`` (every transaction), ``fraud-alerts`` (review/block) and
   ``training`` (allow) records, keyed by ``transaction_id``;
6. PostgreSQL: upsert flagged transactions and newly flagged entities (the
   ``blocked`` marks on their Neo4j nodes follow in the feedback worker: they
   may wait on the projection's locks, the stream must not);
7. flush the producer (every output acknowledged by Kafka);
8. flush the DLQ records, then commit the consumed offsets (without waiting for
   the broker's answer: everything before is durable; a lost commit means a
   redelivery; a clean stop commits once more and waits);
9. every ``checkpoint_every`` seconds (and at a clean stop): save the rule
   state with the positions just committed (``detectors.checkpoint``).

End-to-end latency runs from a transaction's Kafka timestamp to step 7.

A crash before 8 redelivers the batch: outputs carry deterministic keys and
the stores upsert, so a replay duplicates nothing but records.  A restart
resumes at the last checkpoint with the rule state it saved, so what was
decided after it is decided again with the history it first saw.  Steps 3 and
5-8 are retried with backoff while a service is away; the batch is decided
once.  Labels (``fraud-labels``) are applied by a worker thread
(``fraudgraph.feedback``); rings are swept in step 3, at boundaries of event time.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors import checkpoint
from detectors.blocklist import BlocklistCache, NewEntry
from detectors.config import DetectorConfig
from detectors.decision import ALLOW
from detectors.pipeline import Decided, Detector, flagged_row
from detectors.rules import RuleEngine
from fraudgraph import connect, metrics
from fraudgraph.feedback import (
    DEGRADED,
    INFINITY,
    Feedback,
    attempt,
    retrying,
    service_down,
)
from fraudgraph.graph_view import GraphView
from fraudgraph.loop import IdleWatch, LoopStats, stop_on_signals
from fraudgraph.settings import Settings
from graph.projection import GraphWriter
from ingest import kafka
from ingest.publish import Publisher
from ingest.source import TransactionSource
from ingest.transaction import DecoderConfig, encode
from storage.blocklist import BlocklistStore

log = logging.getLogger(__name__)
_ENCODER = msgspec.json.Encoder()
LATENCY_SAMPLES = 1_000_000  # latencies kept for the run's percentiles (see DaemonStats)


@dataclass(frozen=True)
class DaemonOptions:
    group: str = "fraudgraph-detector"
    batch_size: int = 5000
    batch_timeout: float = 0.001
    from_beginning: bool = False
    until_idle: float | None = None
    max_messages: int | None = None
    metrics_port: int = 0
    labels: bool = True
    keep_decisions: bool = False  # remember every decision (for a summary at the end)
    checkpoint_every: float | None = 30.0  # seconds between rule-state checkpoints; None: off
    #: seconds a batch waits for the graph to hold its time (fraudgraph.graph_view);
    #: None: as long as it takes (backtests: decisions then never depend on timing)
    graph_wait: float | None = 10.0


@dataclass
class DaemonStats(LoopStats):
    consumed: int = 0
    rejected: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: end-to-end latency of every ``latency_stride``-th decision, in stream order: when
    #: LATENCY_SAMPLES are held every other one goes and the stride doubles, so a long
    #: run keeps an even sample of its whole length in bounded memory (8 B each)
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    latency_stride: int = 1
    latency_seen: int = 0
    flagged_entities: int = 0
    labels: int = 0
    rings: int = 0
    batches: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    graph_wait_seconds: float = 0.0  # waiting for the graph to hold the batch's time
    graph_behind: int = 0  # batches decided before it did (the wait ran out)


def run(settings: Settings, config: DetectorConfig, options: DaemonOptions,
        decoder: DecoderConfig, progress: Callable[[int], None] = lambda _n: None,
        stop: threading.Event | None = None,
        ready: threading.Event | None = None) -> DaemonStats:
    """Decide until stopped (SIGTERM/SIGINT, ``stop``, idle or message limit); ``ready``
    is set once the consumer group has given this daemon its partitions."""
    stop = stop or stop_on_signals()
    # the driver retries transient failures for 3 s; longer outages are `retrying`'s,
    # which reports them on /healthz and backs off
    driver = connect.neo4j(settings, retry_seconds=3.0)
    GraphWriter(driver).apply_schema()
    store = connect.blocklist(settings)
    listener = connect.blocklist_listener(settings)
    cache = BlocklistCache(store.changed_since, config.blocklist.refresh_seconds,
                           changed=listener.changed)
    topics = settings.topics
    kafka.ensure_topics(settings.kafka.bootstrap, topics.all(), settings.kafka.partitions)
    detector = Detector(config)
    state = _RuleState(settings, options, detector)
    source = TransactionSource(settings.kafka.bootstrap, options.group, topics.transactions,
                               topics.dlq, decoder, batch_size=options.batch_size,
                               batch_timeout=options.batch_timeout,
                               from_beginning=options.from_beginning,
                               # small fetches per partition keep partitions close in
                               # event time (rule state and labels follow event time)
                               **{"max.partition.fetch.bytes": 128 * 1024,
                                  "error_cb": _kafka_error})
    state.restore(source)
    out = Publisher(settings.kafka.bootstrap, **{"linger.ms": 1})
    feedback = Feedback(settings, config, options.group, driver, connect.blocklist(settings),
                        from_beginning=options.from_beginning, labels=options.labels)
    view = GraphView(driver, source, feedback, config, topics.transactions, options.graph_wait)
    if not config.graph.enabled:  # nothing reads the graph: labels need not wait for it
        feedback.graph_ms = INFINITY
    stats, idle = DaemonStats(), IdleWatch(options.until_idle)
    last_ok = [time.monotonic()]
    server = metrics.serve_with_health(options.metrics_port, lambda: _health(last_ok, stats))
    try:
        while not stop.is_set():
            last_ok[0] = time.monotonic()
            t0 = time.perf_counter()
            batch = source.poll_batch()                                            # 1
            if not batch.consumed:
                if "kafka" in DEGRADED:  # librdkafka reconnects by itself; is it back?
                    attempt("kafka", source.probe)
                if cache.due():  # new entries and outages, even when idle
                    attempt("postgres", cache.refresh)
                if config.graph.enabled:  # labels wait for the graph to hold their time
                    attempt("neo4j", view.idle)
                feedback.drain(cache)
                if ready is not None and source.assigned():
                    ready.set()
                if idle.expired(source.assigned() and feedback.joined):
                    break
                continue
            idle.busy()
            stats.batch_started()
            t1 = time.perf_counter()
            if cache.due():  # down: decide on the last view                       # 2
                attempt("postgres", cache.refresh)
            txs = batch.transactions
            facts = (retrying("neo4j", stop, view.facts, txs, cache, stop)        # 3
                     if config.graph.enabled and txs else None)
            t2 = time.perf_counter()
            decided, flags = detector.decide_batch(txs, facts, cache,              # 4
                                                   int(time.time() * 1000), batch.produced_ms)
            t3 = time.perf_counter()
            for d in decided:                                                      # 5
                _publish(out, topics, d)
            retrying("postgres", stop, _store, store, feedback, decided, flags)    # 6
            t4 = time.perf_counter()
            retrying("kafka", stop, out.flush)  # failed records are queued again   # 7
            published_ms = time.time() * 1000  # the decisions are produced: latency ends
            retrying("kafka", stop, source.commit, True)                           # 8
            state.checkpoint(source)
            t5 = time.perf_counter()
            stats.committed()
            _account(stats, batch.consumed, batch.rejected, batch.reasons, decided, flags,
                     batch.produced_ms, published_ms, options.keep_decisions,
                     {"consume": t1 - t0, "graph": t2 - t1, "decide": t3 - t2,
                      "store": t4 - t3, "commit": t5 - t4})
            _gauges(source, detector, cache)
            progress(batch.consumed)
            feedback.drain(cache)
            if options.max_messages is not None and stats.consumed >= options.max_messages:
                break
        retrying("kafka", stop, source.commit)  # a clean stop: the last commit, confirmed
        state.checkpoint(source, force=True)
    finally:
        if server is not None:
            server.shutdown()
        feedback.close()
        stats.rings, stats.labels = view.rings.rings, feedback.labels_applied
        stats.graph_wait_seconds, stats.graph_behind = view.waited_seconds, view.behind
        source.close()
        listener.close()
        store.close()
        driver.close()
    return stats


class _RuleState:
    """Rule-state checkpoints (:mod:`detectors.checkpoint`) of this daemon's group."""

    def __init__(self, settings: Settings, options: DaemonOptions, detector: Detector) -> None:
        self.path = checkpoint.path_for(settings.data_dir, options.group,
                                        settings.topics.transactions)
        self.every = None if options.from_beginning else options.checkpoint_every
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
            self.detector.engine.restore(saved.state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("ignoring the rule-state checkpoint %s (%s); empty state", self.path, exc)
            self.detector.engine = RuleEngine(self.detector.config)  # nothing half-restored
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
            size = checkpoint.save(self.path, positions, self.detector.engine.snapshot(),
                                   self.detector.version)
            log.debug("rule-state checkpoint: %d bytes in %.3fs", size,
                      time.monotonic() - self.last)


def _kafka_error(error: kafka.KafkaError) -> None:
    """librdkafka's error callback (called inside poll): brokers unreachable."""
    if error.code() in (kafka.KafkaError._ALL_BROKERS_DOWN, kafka.KafkaError._TRANSPORT):
        service_down("kafka", error.str(), "the clients reconnect by themselves")


def _gauges(source: TransactionSource, detector: Detector, cache: BlocklistCache) -> None:
    metrics.DETECTOR_LAG.set(source.lag())
    for table, size in detector.engine.state_sizes().items():
        metrics.DETECTOR_RULE_STATE.labels(table).set(size)
    metrics.DETECTOR_BLOCKLIST.set(cache.size)


def _publish(out: Publisher, topics: Any, d: Decided) -> None:
    key = d.record.transaction_id.encode()
    value = _ENCODER.encode(d.record)
    out.send(topics.decisions, key, value)
    if d.verdict.decision == ALLOW:
        out.send(topics.training, key, encode(d.transaction))
    else:
        out.send(topics.alerts, key, value)


def _store(store: BlocklistStore, feedback: Feedback, decided: list[Decided],
           flags: list[NewEntry]) -> None:
    flagged = [flagged_row(d) for d in decided if d.verdict.decision != ALLOW]
    if flagged:
        store.record_flagged(flagged)
        feedback.record_decisions([{"id": f.transaction_id, "decision": f.decision,
                                    "score": f.score, "reasons": [r["code"] for r in f.reasons]}
                                   for f in flagged])
    if flags:  # already in the cache (step 4); PostgreSQL is the record
        store.upsert(flags, actor="daemon")
        feedback.mark_blocked(flags)  # the Neo4j marks: off the hot path


def _account(stats: DaemonStats, consumed: int, rejected: int, reasons: Counter[str],
             decided: list[Decided], flags: list[NewEntry], produced_ms: list[int],
             published_ms: float, keep: bool, stages: dict[str, float]) -> None:
    stats.batches += 1
    stats.consumed += consumed
    stats.rejected += rejected
    stats.flagged_entities += len(flags)
    metrics.DETECTOR_BATCH_SIZE.observe(consumed)
    for stage, seconds in stages.items():
        stats.stage_seconds[stage] = stats.stage_seconds.get(stage, 0.0) + seconds
        metrics.DETECTOR_STAGE_SECONDS.labels(stage).observe(seconds)
    for code, count in reasons.items():
        metrics.DETECTOR_REJECTED.labels(code).inc(count)
    for entry in flags:
        metrics.DETECTOR_FLAGGED.labels(entry.entity_type, entry.source).inc()
    outcomes: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for d, produced in zip(decided, produced_ms, strict=True):
        outcome = d.verdict.decision
        outcomes[outcome] += 1
        if outcome != ALLOW:
            codes.update(reason.code for reason in d.verdict.reasons)
        latency = max(published_ms - produced, 0.0)
        metrics.DETECTOR_LATENCY.observe(latency / 1000)
        _sample_latency(stats, latency)
        if keep:
            stats.decisions[d.record.transaction_id] = outcome
    stats.outcomes.update(outcomes)
    for outcome, count in outcomes.items():  # one labelled increment per batch, not per message
        metrics.DETECTOR_DECISIONS.labels(outcome).inc(count)
    for code, count in codes.items():
        metrics.DETECTOR_REASONS.labels(code).inc(count)


def _sample_latency(stats: DaemonStats, latency: float) -> None:
    if stats.latency_seen % stats.latency_stride == 0:
        if len(stats.latencies_ms) >= LATENCY_SAMPLES:
            stats.latencies_ms = stats.latencies_ms[::2]
            stats.latency_stride *= 2
        if stats.latency_seen % stats.latency_stride == 0:
            stats.latencies_ms.append(latency)
    stats.latency_seen += 1


def _health(last_ok: list[float], stats: DaemonStats) -> tuple[bool, dict[str, Any]]:
    stalled = time.monotonic() - last_ok[0]
    degraded = set(DEGRADED)
    ok = stalled < 30 and not degraded
    return ok, {"status": "ok" if ok else "degraded", "degraded": sorted(degraded),
                "seconds_since_progress": round(stalled, 1), "consumed": stats.consumed}

