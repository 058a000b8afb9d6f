"""The streaming detector daemon (`fraudgraph run`): transactions → decisions.

Each micro-batch goes through named stages (timed from outside, each a metric):

1. **consume**: up to ``batch_size`` messages, decoded; bad ones are queued for
   the dead-letter topic (``TransactionSource.poll_batch``);
2. **graph** (enrich): refresh the in-process blocklist view (at most one
   PostgreSQL query per ``refresh_seconds``, at once when a change was notified;
   while PostgreSQL is away the last view serves), then wait until the graph holds
   everything up to the batch's time and read its facts as of each transaction's
   time (three Neo4j queries per batch; ``fraudgraph.stream.graph_view``);
3. **decide**: rules, graph checks, combiner, feature vectors and, once a learned
   model is promoted, its one predict call for the batch (pure:
   ``Detector.decide_batch``; the model is looked for every ``model.reload``,
   :class:`fraudgraph.stream.model_watch.ModelWatch`);
4. **store** (publish and store): queue ``decisions`` (every transaction),
   ``fraud-alerts`` (review/block) and ``training`` (every transaction's feature
   vector, :mod:`detectors.features`) records keyed by ``transaction_id``; upsert
   flagged transactions and newly flagged entities in PostgreSQL (their Neo4j marks
   follow in the worker: they may wait on the projection's locks, the stream must not);
5. **commit** (:class:`fraudgraph.stream.batch.BatchCommit`): flush the producer (every
   output acknowledged), the DLQ records and the offsets (without waiting for the
   broker's answer; a clean stop commits once more and waits), then every
   ``checkpoint_every`` seconds the rule state with the positions just committed
   (written by a forked child: the loop stops only for the fork,
   :mod:`fraudgraph.stream.rule_state`).

End-to-end latency runs from a transaction's Kafka timestamp to the producer flush.

A crash before the commit redelivers the batch: outputs carry deterministic keys
and the stores upsert, so a replay duplicates nothing but records.  A restart
resumes at the last checkpoint with the rule state it saved.  Stages 2, 4 and 5 are
retried with backoff while a service is away (``fraudgraph.stream.health``); the batch is
decided once.  Labels, graph annotations and ring writes run in a worker thread
(``fraudgraph.stream.feedback``); rings are swept in stage 2, at boundaries of event time.
"""

from __future__ import annotations

import logging
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from detectors.blocklist import BlocklistCache, NewEntry
from detectors.config import DetectorConfig
from detectors.decision import ALLOW
from detectors.features import SCHEMA_VERSION, TrainingRecord
from detectors.graph_checks import BatchFacts
from detectors.pipeline import Decided, Detector, flagged_row
from fraudgraph import connect, metrics
from fraudgraph.blocking import Blocker
from fraudgraph.settings import Settings, Topics
from fraudgraph.stream.annotator import GraphAnnotator
from fraudgraph.stream.batch import BatchCommit, StageTimer
from fraudgraph.stream.feedback import Feedback
from fraudgraph.stream.graph_view import GraphView
from fraudgraph.stream.health import Health, isolating, transient
from fraudgraph.stream.label_applier import LabelApplier
from fraudgraph.stream.loop import (
    IdleWatch,
    LoopStats,
    freeze_alive,
    stop_on_signals,
    tuned_gc,
)
from fraudgraph.stream.model_watch import ModelWatch
from fraudgraph.stream.ring_sweep import RingSweep
from fraudgraph.stream.rule_state import RuleState
from graph import detect
from graph.driver import Neo4jError
from graph.projection import GraphWriter, decision_row
from ingest import kafka
from ingest.dlq import dlq_record
from ingest.label_source import INFINITY, LabelSource
from ingest.publish import Publisher
from ingest.source import Batch, TransactionSource
from ingest.transaction import DecodeError, DecoderConfig, Transaction, encode
from storage.blocklist import BlocklistListener, BlocklistStore

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
    #: seconds a batch waits for the graph to hold its time (fraudgraph.stream.graph_view);
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
    #: of which for the projection and for the label worker
    graph_wait_on: dict[str, float] = field(default_factory=dict)
    graph_behind: int = 0  # batches decided before it did (the wait ran out)
    model_seconds: float = 0.0  # of the decide stage: the learned model's predict calls
    model_version: str | None = None  # the promoted model deciding at the end
    checkpoints: int = 0  # rule-state checkpoints written
    checkpoint_pause: float = 0.0  # seconds: the longest the loop stopped for one
    checkpoint_cpu: float = 0.0  # CPU seconds of the forked checkpoint writers
    #: Neo4j calls of this run (loop and worker): function -> (calls, wall seconds)
    neo4j_calls: dict[str, tuple[int, float]] = field(default_factory=dict)


def run(settings: Settings, config: DetectorConfig, options: DaemonOptions,
        decoder: DecoderConfig, progress: Callable[[int], None] = lambda _n: None,
        stop: threading.Event | None = None,
        ready: threading.Event | None = None) -> DaemonStats:
    """Decide until stopped (SIGTERM/SIGINT, ``stop``, idle or message limit); ``ready``
    is set once the consumer group has given this daemon its partitions."""
    with tuned_gc():
        return _run(settings, config, options, decoder, progress,
                    stop or stop_on_signals(), ready)


def _run(settings: Settings, config: DetectorConfig, options: DaemonOptions,
         decoder: DecoderConfig, progress: Callable[[int], None], stop: threading.Event,
         ready: threading.Event | None) -> DaemonStats:
    health = Health()
    detect.CLOCK.observe = lambda call, seconds: metrics.DETECTOR_NEO4J_SECONDS.labels(
        call).inc(seconds)
    calls_before = detect.CLOCK.snapshot()
    s = _Services.open(settings, config, options, decoder, health)
    freeze_alive()  # the restored state, the connections
    stats, idle, timer = DaemonStats(), IdleWatch(options.until_idle), StageTimer()
    commit = BatchCommit(s.source, out=s.out, state=s.state, health=health, stop=stop,
                         asynchronous=True)
    server = metrics.serve_with_health(options.metrics_port,
                                       lambda: health.report(consumed=stats.consumed))
    try:
        while not stop.is_set():
            health.passed()
            with timer("consume"):
                batch = s.source.poll_batch()
            if not batch.consumed:
                if s.idle(health, ready, idle):
                    break
                continue
            idle.busy()
            stats.batch_started()
            txs = batch.transactions
            with timer("graph"):
                facts = s.enrich(txs, health, stop)
            with timer("decide"):
                decided, flags = s.detector.decide_batch(txs, facts, s.cache,
                                                         int(time.time() * 1000),
                                                         batch.produced_ms)
            with timer("store"):
                commit.publish(_records(settings.topics, decided))
                commit.store(s.store_batch, decided, flags, batch.positions)
            with timer("commit"):
                published_ms = commit.commit()
            stats.committed()
            _account(stats, batch, decided, flags, published_ms, options.keep_decisions,
                     timer.take())
            s.after_batch()
            progress(batch.consumed)
            if options.max_messages is not None and stats.consumed >= options.max_messages:
                break
        # the worker stops first and what it learnt joins the state, then the last
        # checkpoint: a fraud applied now is not lost to the next start
        s.feedback.close()
        s.feedback.drain(s.cache)
        commit.close()
    finally:
        if server is not None:
            server.shutdown()
        s.close(stats)
        stats.neo4j_calls = detect.CLOCK.since(calls_before, detect.CLOCK.snapshot())
    return stats


@dataclass
class _Services:
    """What a daemon holds open, and the loop's steps that use several of them."""

    config: DetectorConfig
    driver: Any
    store: BlocklistStore
    listener: BlocklistListener
    cache: BlocklistCache
    source: TransactionSource
    out: Publisher
    detector: Detector
    state: RuleState
    blocker: Blocker
    annotator: GraphAnnotator
    feedback: Feedback
    view: GraphView
    model: ModelWatch

    @classmethod
    def open(cls, settings: Settings, config: DetectorConfig, options: DaemonOptions,
             decoder: DecoderConfig, health: Health) -> _Services:
        detector = Detector(config)
        state = RuleState(settings, options.group,
                          None if options.from_beginning else options.checkpoint_every,
                          detector)
        state.claim()  # first: a refused daemon joins no group and opens nothing
        try:
            return cls._open(settings, config, options, decoder, health, detector, state)
        except BaseException:
            state.release()
            raise

    @classmethod
    def _open(cls, settings: Settings, config: DetectorConfig, options: DaemonOptions,
              decoder: DecoderConfig, health: Health, detector: Detector,
              state: RuleState) -> _Services:
        # the driver retries transient failures for 3 s; longer outages are the
        # loop's (Health.retrying), which reports them on /healthz and backs off
        driver = connect.neo4j(settings, retry_seconds=3.0)
        GraphWriter(driver).apply_schema()
        store, topics = connect.blocklist(settings), settings.topics
        listener = connect.blocklist_listener(settings)
        cache = BlocklistCache(store.changed_since, config.blocklist.refresh_ms / 1000,
                               changed=listener.changed)
        kafka.ensure_topics(settings.kafka.bootstrap, topics.all(), settings.kafka.partitions)
        # small fetches per partition keep partitions close in event time (rule state
        # and labels follow event time)
        consumer: dict[str, Any] = {"max.partition.fetch.bytes": 128 * 1024,
                                    "error_cb": lambda error: _kafka_error(health, error)}
        source = TransactionSource(
            settings.kafka.bootstrap, options.group, topics.transactions, topics.dlq, decoder,
            batch_size=options.batch_size, batch_timeout=options.batch_timeout,
            from_beginning=options.from_beginning, **consumer)
        state.restore(source)
        out = Publisher(settings.kafka.bootstrap, **{"linger.ms": 1})
        feedback, annotator = _worker(settings, config, options, decoder, driver, health)
        view = GraphView(driver, source, feedback, RingSweep(driver, config, annotator),
                         config, topics.transactions, options.graph_wait,
                         settings.neo4j.detail)
        if not config.graph.enabled:  # nothing reads the graph: labels need not wait for it
            feedback.graph_ms = INFINITY
        feedback.take_frauds = lambda frauds: detector.features.learn_frauds(frauds)
        blocker = Blocker(store, marks=annotator.mark_blocked)  # marks: in the worker
        model = ModelWatch(store, detector, health)
        model.look()
        return cls(config, driver, store, listener, cache, source, out, detector, state,
                   blocker, annotator, feedback, view, model)

    def idle(self, health: Health, ready: threading.Event | None, idle: IdleWatch) -> bool:
        """After an empty poll: look at the services, let labels apply; True: stop."""
        if "kafka" in health.degraded:  # librdkafka reconnects by itself; is it back?
            health.attempt("kafka", self.source.probe)
        if self.cache.due():  # new entries and outages, even when idle
            health.attempt("postgres", self.cache.refresh)
        if self.config.graph.enabled:  # labels wait for the graph to hold their time
            health.attempt("neo4j", self.view.idle)
        self.feedback.drain(self.cache)
        if ready is not None and self.source.assigned():
            ready.set()
        return idle.expired(self.source.assigned() and self.feedback.joined)

    def enrich(self, txs: list[Transaction], health: Health,
               stop: threading.Event) -> BatchFacts | None:
        """The blocklist view refreshed (when due; down: the last view), then the
        batch's graph facts as of each transaction's time (None: graph checks off)."""
        if self.cache.due():
            health.attempt("postgres", self.cache.refresh)
        if not self.config.graph.enabled or not txs:
            return None
        try:
            return health.retrying("neo4j", stop, self.view.facts, txs, self.cache, stop)
        except Neo4jError as exc:
            if transient(exc):
                raise  # stopping
            # a read that fails the same way every time (a memory limit): decide on the
            # rules alone rather than stop the stream; said in the log and the metric
            log.error("graph read failed for a batch of %d (%s); deciding it without "
                      "graph checks", len(txs), exc)
            metrics.DETECTOR_REJECTED.labels("graph_read_failed").inc(len(txs))
            return None

    def store_batch(self, decided: list[Decided], flags: list[NewEntry],
                    positions: list[tuple[str, int, int]]) -> None:
        """PostgreSQL: flagged transactions, newly flagged entities (already in the
        cache); their Neo4j annotations are queued for the worker.  A row the database
        refuses for good is isolated: its transaction goes to the DLQ
        (``store_rejected``), an entry is logged and counted; the rest is written."""
        flagged = [(d, where) for d, where in zip(decided, positions, strict=True)
                   if d.verdict.decision != ALLOW]
        isolating(flagged, lambda rows: self._record_flagged([d for d, _ in rows]),
                  lambda row, exc: self._dead_letter(row[0], row[1], exc))
        isolating(flags, lambda entries: self.blocker.block(entries, "daemon"), _refused)

    def _record_flagged(self, decided: list[Decided]) -> None:
        flagged = [flagged_row(d) for d in decided]
        self.store.record_flagged(flagged)
        self.annotator.record_decisions([decision_row(f) for f in flagged])

    def _dead_letter(self, d: Decided, where: tuple[str, int, int],
                     exc: BaseException) -> None:
        """A decided transaction whose record the store refuses: to the DLQ (the
        decision itself is on its topic), flushed with the batch's commit."""
        error = DecodeError("store_rejected", f"{type(exc).__name__}: {exc}"[:300])
        key, value = dlq_record(encode(d.transaction), d.record.transaction_id.encode(),
                                error, *where)
        self.source.dlq.send(self.source.dlq_topic, key, value)
        metrics.DETECTOR_REJECTED.labels(error.reason).inc()
        log.error("flagged transaction %s not stored (%s): on the DLQ",
                  d.record.transaction_id, error.detail)

    def after_batch(self) -> None:
        metrics.DETECTOR_LAG.set(self.source.lag())
        for table, size in self.detector.engine.state_sizes().items():
            metrics.DETECTOR_RULE_STATE.labels(table).set(size)
        metrics.DETECTOR_BLOCKLIST.set(self.cache.size)
        labels = self.feedback.labels
        metrics.DLQ_DROPPED.set(self.source.dlq_dropped
                                + (labels.dlq_dropped if labels is not None else 0))
        metrics.DETECTOR_RINGS.set(self.view.rings.rings)
        self.model.after_batch()
        self.feedback.drain(self.cache)

    def close(self, stats: DaemonStats) -> None:
        self.feedback.close()
        self.state.wait()  # a checkpoint writer in flight (a stop by an error) is reaped
        self.state.release()
        stats.rings, stats.labels = self.view.rings.rings, self.feedback.labels_applied
        stats.graph_wait_seconds, stats.graph_behind = self.view.waited_seconds, self.view.behind
        stats.graph_wait_on = dict(self.view.waited_on)
        stats.model_seconds, stats.model_version = self.model.seconds(), self.model.version
        stats.checkpoints, stats.checkpoint_pause = self.state.written, self.state.longest_pause
        stats.checkpoint_cpu = self.state.writer_cpu
        self.annotator.blocker.store.close()
        self.source.close()
        self.listener.close()
        self.store.close()
        self.driver.close()


def _worker(settings: Settings, config: DetectorConfig, options: DaemonOptions,
            decoder: DecoderConfig, driver: Any, health: Health
            ) -> tuple[Feedback, GraphAnnotator]:
    """The worker thread and what it schedules, with its own PostgreSQL connection."""
    stop = threading.Event()  # the worker's own: it outlives the loop's last commit
    blocker = Blocker(connect.blocklist(settings), driver)
    annotator = GraphAnnotator(driver, blocker, health, stop,
                               with_detail=settings.neo4j.detail == "flagged")
    labels = None
    if options.labels:
        labels = LabelSource(settings.kafka.bootstrap, f"{options.group}-labels",
                             settings.topics.labels, settings.topics.dlq,
                             from_beginning=options.from_beginning,
                             max_future_ms=decoder.max_future_ms,
                             rejected=lambda reason: metrics.DETECTOR_REJECTED.labels(reason).inc())
    return (Feedback(labels, LabelApplier(blocker, driver, config), annotator, health, stop),
            annotator)


def _refused(entry: NewEntry, exc: BaseException) -> None:
    """A blocklist entry the store refuses for good: logged and counted (it is active in
    this process's cache until restart; the decision that made it is on its topic)."""
    metrics.DETECTOR_REJECTED.labels("blocklist_rejected").inc()
    log.error("blocklist entry %s %s not stored: %s", entry.entity_type,
              entry.entity_id[:80], f"{type(exc).__name__}: {exc}"[:300])


def _kafka_error(health: Health, error: kafka.KafkaError) -> None:
    """librdkafka's error callback (called inside poll): brokers unreachable."""
    if error.code() in (kafka.KafkaError._ALL_BROKERS_DOWN, kafka.KafkaError._TRANSPORT):
        health.down("kafka", error.str(), "the clients reconnect by themselves")


def _records(topics: Topics, decided: list[Decided]) -> Iterator[tuple[str, bytes, bytes]]:
    """The batch's output records, keyed by transaction id: every decision, with the
    feature vector it saw on ``training`` (unless the model is off); an alert for a
    review or block."""
    for d in decided:
        key = d.record.transaction_id.encode()
        value = _ENCODER.encode(d.record)
        yield topics.decisions, key, value
        if d.features:  # none with the model off
            yield topics.training, key, _ENCODER.encode(TrainingRecord(
                d.record.transaction_id, d.record.event_ms, d.record.card_id, SCHEMA_VERSION,
                d.features))
        if d.verdict.decision != ALLOW:
            yield topics.alerts, key, value


def _account(stats: DaemonStats, batch: Batch, decided: list[Decided], flags: list[NewEntry],
             published_ms: float, keep: bool, stages: dict[str, float]) -> None:
    stats.batches += 1
    stats.consumed += batch.consumed
    stats.rejected += batch.rejected
    stats.flagged_entities += len(flags)
    metrics.DETECTOR_BATCH_SIZE.observe(batch.consumed)
    for stage, seconds in stages.items():
        stats.stage_seconds[stage] = stats.stage_seconds.get(stage, 0.0) + seconds
        metrics.DETECTOR_STAGE_SECONDS.labels(stage).observe(seconds)
    for code, count in batch.reasons.items():
        metrics.DETECTOR_REJECTED.labels(code).inc(count)
    for entry in flags:
        metrics.DETECTOR_FLAGGED.labels(entry.entity_type, entry.source).inc()
    outcomes: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    for d, produced in zip(decided, batch.produced_ms, strict=True):
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
