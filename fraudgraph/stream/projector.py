"""The projection consumer: transactions topic → Neo4j graph, in micro-batches.

Commit order, per batch (at-least-once delivery, idempotent effects):

The same skeleton as the daemon (``fraudgraph.stream.batch``): stages consume, write,
commit, timed from outside.

1. consume up to ``batch_size`` messages and decode them; bad ones are counted and
   skipped (the detector daemon owns their dead-letter records);
2. write the batch in ONE Neo4j transaction (``GraphWriter.project``): drop what
   the graph already holds (by transaction id; with ``FRAUDGRAPH_GRAPH_DETAIL=flagged``
   by the partitions' projection cursors, locked, and recent ids), MERGE entities,
   add aggregates, create detail (unless flagged: the daemon writes it), advance the
   cursors;
3. commit: commit the Kafka offsets
   (:class:`fraudgraph.stream.batch.BatchCommit`).

A crash anywhere before 3 redelivers the batch, and 2 makes the replay a no-op.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from fraudgraph import connect, metrics
from fraudgraph.settings import Settings
from fraudgraph.stream.batch import BatchCommit, StageTimer
from fraudgraph.stream.loop import IdleWatch, LoopStats, stop_on_signals
from graph.projection import Cursor, GraphWriter
from ingest.event_clock import EventClock
from ingest.source import Batch, TransactionSource
from ingest.transaction import DecoderConfig

log = logging.getLogger(__name__)


@dataclass
class ProjectorStats(LoopStats):
    consumed: int = 0
    projected: int = 0
    duplicates: int = 0
    rejected: int = 0
    relationship_rows: int = 0
    batches: int = 0
    pruned: int = 0
    write_seconds: float = 0.0
    #: wall seconds per part of the Neo4j writes (``graph.projection.PARTS``)
    part_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectorOptions:
    group: str = "fraudgraph-projection"
    batch_size: int = 10_000
    batch_timeout: float = 0.5
    from_beginning: bool = False
    until_idle: float | None = None  # stop after this many seconds without messages
    max_messages: int | None = None  # stop after consuming this many (benchmarks)
    retention_ms: int = 30 * 86_400_000
    prune_every: int = 200  # batches between retention passes
    metrics_port: int = 0
    #: parts of the write not written (``GraphWriter``'s ``leave_out``): benchmarks only
    leave_out: tuple[str, ...] = ()


def run(settings: Settings, options: ProjectorOptions, decoder: DecoderConfig,
        progress: Callable[[int], None] = lambda _n: None,
        stop: threading.Event | None = None) -> ProjectorStats:
    """Project until stopped (SIGTERM/SIGINT, ``stop``, idle or message limit)."""
    stop = stop or stop_on_signals()
    metrics.serve(options.metrics_port)
    driver = connect.neo4j(settings)
    writer = GraphWriter(driver, leave_out=options.leave_out,
                         detail=settings.neo4j.detail == "all")
    writer.apply_schema()
    topic = settings.topics.transactions
    prefix = f"{options.group}:"
    source = TransactionSource(settings.kafka.bootstrap, options.group, topic,
                               settings.topics.dlq, decoder, batch_size=options.batch_size,
                               batch_timeout=options.batch_timeout,
                               from_beginning=options.from_beginning,
                               # the daemon writes a bad message's DLQ record; here it is
                               # counted (fraudgraph_projection_rejected_total) and skipped
                               dead_letters=False)
    stats, idle, timer = ProjectorStats(), IdleWatch(options.until_idle), StageTimer()
    clock = EventClock()  # retention's "now": one event dated far ahead moves nothing
    commit = BatchCommit(source)  # a failure propagates: the restart redelivers
    try:
        while not stop.is_set():
            with timer("consume"):
                batch = source.poll_batch()
            if not batch.consumed:
                if idle.expired(source.assigned()):
                    break
                continue
            idle.busy()
            stats.batch_started()
            with timer("write"):
                result = writer.project(batch.transactions, _cursors(prefix, batch),
                                        batch.positions)
            with timer("commit"):
                commit.commit()
            stats.committed()
            _account(stats, batch.consumed, batch.rejected, result.projected,
                     result.duplicates, result.relationship_rows, timer.take()["write"],
                     batch.reasons)
            for part, seconds in result.seconds.items():
                stats.part_seconds[part] = stats.part_seconds.get(part, 0.0) + seconds
                metrics.PROJECTION_PART_SECONDS.labels(part).inc(seconds)
            metrics.PROJECTION_LAG.set(source.lag())
            progress(batch.consumed)
            clock.observe(tx.event_ms for tx in batch.transactions)
            if stats.batches % options.prune_every == 0 and clock.now_ms is not None:
                pruned = writer.prune(options.retention_ms, clock.now_ms)
                stats.pruned += pruned
                metrics.PROJECTION_PRUNED.inc(pruned)
            if options.max_messages is not None and stats.consumed >= options.max_messages:
                break
    finally:
        source.close()
        driver.close()
    return stats


def _cursors(prefix: str, batch: Batch) -> list[Cursor]:
    """The cursors a batch advances: per partition its highest offset and newest event
    time (transactions already projected count: they are in the graph)."""
    newest: dict[tuple[str, int], int] = {}
    for tx, (topic, partition, _) in zip(batch.transactions, batch.positions, strict=True):
        if tx.event_ms > newest.get((topic, partition), -1):
            newest[(topic, partition)] = tx.event_ms
    return [Cursor(f"{prefix}{t}:{p}", t, p, offset, newest.get((t, p)))
            for (t, p), offset in batch.high.items()]


def _account(stats: ProjectorStats, consumed: int, rejected: int, projected: int,
             duplicates: int, rows: int, elapsed: float, reasons: dict[str, int]) -> None:
    stats.batches += 1
    stats.consumed += consumed
    stats.rejected += rejected
    stats.projected += projected
    stats.duplicates += duplicates
    stats.relationship_rows += rows
    stats.write_seconds += elapsed
    metrics.PROJECTION_BATCHES.inc()
    metrics.PROJECTION_TRANSACTIONS.inc(projected)
    metrics.PROJECTION_DUPLICATES.inc(duplicates)
    metrics.PROJECTION_RELATIONSHIP_ROWS.inc(rows)
    metrics.PROJECTION_BATCH_SECONDS.observe(elapsed)
    for reason, count in reasons.items():
        metrics.PROJECTION_REJECTED.labels(reason).inc(count)

