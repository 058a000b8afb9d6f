"""The consuming side of the transactions topic: micro-batches of decoded transactions.

Every consumer of ``transactions`` (projection, detector daemon) reads through a
:class:`TransactionSource`.  Per batch it decodes every message; a message that
fails goes to the dead-letter topic with its reason and never stops the stream: its
DLQ record fits Kafka's limit whatever the message (:mod:`ingest.dlq`), and one
Kafka refuses for good all the same is logged and counted
(:attr:`TransactionSource.dlq_dropped`), never raised.

Commit order (at-least-once, nothing lost):

1. ``poll_batch()`` consumes up to ``batch_size`` messages, decodes them and
   queues DLQ records for the bad ones (when this consumer owns the DLQ:
   ``dead_letters``; the others count and skip);
2. the caller makes the batch's effects durable (Neo4j, PostgreSQL, topics);
3. ``commit()`` flushes the DLQ records (they are effects too), then commits
   the consumed offsets (synchronously, or without waiting for the broker's
   answer when the caller says so: everything before is durable).

If anything fails before step 3 completes, nothing is committed and the batch
is redelivered: effects must therefore be idempotent.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ingest import kafka
from ingest.dlq import dlq_record
from ingest.publish import DeadLetterPublisher
from ingest.transaction import DecodeError, DecoderConfig, Transaction, decode


@dataclass(frozen=True)
class Batch:
    """One micro-batch: the good transactions, and how many messages were rejected.

    ``positions[i]`` is the ``(topic, partition, offset)`` of ``transactions[i]``;
    ``high`` maps each ``(topic, partition)`` to the highest offset consumed
    (good or bad messages alike); ``produced_ms[i]`` is the Kafka timestamp of
    ``transactions[i]`` (when it was produced: the start of end-to-end latency).
    """

    transactions: list[Transaction]
    consumed: int
    rejected: int
    reasons: Counter[str] = field(default_factory=Counter)
    positions: list[tuple[str, int, int]] = field(default_factory=list)
    high: dict[tuple[str, int], int] = field(default_factory=dict)
    produced_ms: list[int] = field(default_factory=list)


class TransactionSource:
    def __init__(self, bootstrap: str, group_id: str, topic: str, dlq_topic: str,
                 config: DecoderConfig | None = None, *, batch_size: int = 5000,
                 batch_timeout: float = 0.5, from_beginning: bool = False,
                 dead_letters: bool = True, **consumer_overrides: Any) -> None:
        """``dead_letters``: whether this consumer writes the DLQ records of the messages
        it rejects.  One consumer of a topic owns the DLQ (the detector daemon); the
        others (the projector) count and skip, so a bad message has one record."""
        self.dead_letters = dead_letters
        self.consumer = kafka.consumer(bootstrap, group_id, **consumer_overrides)
        #: end offsets are asked through a client of their own (see end_offsets)
        self._offsets_client = lambda: kafka.consumer(bootstrap, f"{group_id}-end-offsets",
                                                      **consumer_overrides)
        self._offsets: Any = None
        self._start: dict[tuple[str, int], int] = {}  # see start_at
        #: next offset per partition after what this process consumed: a redelivery
        #: (a lost async commit, a rebalance) is dropped, its effects are durable already
        self._next: dict[tuple[str, int], int] = {}
        self.topic = topic
        if from_beginning:
            self.consumer.subscribe([topic], on_assign=kafka.rewind_on_assign)
        else:
            self.consumer.subscribe([topic], on_assign=self._start_at)
        self.dlq = DeadLetterPublisher(bootstrap)
        self.dlq_topic = dlq_topic
        self.config = config or DecoderConfig()
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self._asked: dict[tuple[str, int], tuple[int, float]] = {}  # end offsets from the broker

    @property
    def dlq_dropped(self) -> int:
        """DLQ records Kafka refused for good and that were dropped (logged), so far."""
        return self.dlq.dropped

    def poll_batch(self) -> Batch:
        """Consume and decode up to ``batch_size`` messages (waits at most ``batch_timeout``)."""
        messages = self.consumer.consume(self.batch_size, self.batch_timeout)
        good: list[Transaction] = []
        positions: list[tuple[str, int, int]] = []
        produced: list[int] = []
        high: dict[tuple[str, int], int] = {}
        reasons: Counter[str] = Counter()
        config = self.config
        for msg in messages:
            if msg.error():
                kafka.consumer_error(msg.error())  # raises only a fatal one
                continue
            raw = msg.value()
            where = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            if offset < self._next.get(where, 0):
                continue  # consumed and done before this process was handed it again
            self._next[where] = offset + 1
            high[where] = offset  # messages of a partition arrive in offset order
            try:
                good.append(decode(raw if raw is not None else b"", config))
                positions.append((where[0], where[1], offset))
                produced.append(msg.timestamp()[1])
            except DecodeError as error:
                reasons[error.reason] += 1
                if self.dead_letters:
                    key, value = dlq_record(raw, msg.key(), error, where[0], where[1], offset)
                    self.dlq.send(self.dlq_topic, key, value)
        return Batch(good, len(messages), sum(reasons.values()), reasons, positions, high,
                     produced)

    def start_at(self, offsets: dict[tuple[str, int], int]) -> None:
        """Start these partitions here when they are first assigned (a checkpoint's)."""
        self._start = dict(offsets)

    def _start_at(self, consumer: Any, partitions: list[kafka.TopicPartition]) -> None:
        for tp in partitions:
            offset = self._start.pop((tp.topic, tp.partition), None)
            if offset is not None:
                tp.offset = offset
        consumer.assign(partitions)

    def offsets_valid(self, offsets: dict[tuple[str, int], int], timeout: float = 10.0) -> bool:
        """Whether every offset lies within its partition's current range (a checkpoint
        of a deleted and recreated topic, or of a run long ago, does not)."""
        for (topic, partition), offset in offsets.items():
            try:
                low, high = self.consumer.get_watermark_offsets(
                    kafka.TopicPartition(topic, partition), timeout=timeout, cached=False)
            except kafka.KafkaException:
                return False
            if not low <= offset <= high:
                return False
        return True

    def probe(self, timeout: float = 2.0) -> None:
        """Ask the broker for the input topic's first partition's offsets (a round trip:
        metadata could come from the client's cache); raises KafkaException when no
        broker answers.  An outage check, never on the hot path."""
        self.consumer.get_watermark_offsets(kafka.TopicPartition(self.topic, 0),
                                            timeout=timeout, cached=False)

    def end_offsets(self, timeout: float = 5.0) -> dict[int, int]:
        """The end offset of every partition of the topic (assigned to this consumer or
        not): a broker round trip per partition, so callers ask at most every second.

        Asked through a client of its own, which never subscribes (it joins no group):
        on the consuming client's connection the request queued behind its fetches,
        which wait up to ``fetch.wait.max.ms`` for data, and the daemon's loop spent
        about half its time in here (a py-spy profile of ``fraudgraph bench``)."""
        if self._offsets is None:
            self._offsets = self._offsets_client()
        metadata = self._offsets.list_topics(self.topic, timeout=timeout)
        partitions = metadata.topics[self.topic].partitions
        return {p: self._offsets.get_watermark_offsets(
                    kafka.TopicPartition(self.topic, p), timeout=timeout, cached=False)[1]
                for p in sorted(partitions)}

    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset to read of each assigned partition read from so far."""
        return {(tp.topic, tp.partition): tp.offset
                for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0}

    def assigned(self) -> bool:
        """True once the group has given this consumer partitions."""
        return bool(self.consumer.assignment())

    def lag(self) -> int:
        """Messages not yet consumed on the assigned partitions (from cached watermarks)."""
        return sum(max(0, high - position) for _, position, high in self._progress()
                   if position >= 0 and high >= 0)

    def _progress(self) -> list[tuple[tuple[str, int], int, int]]:
        """(topic, partition), next offset to read (-1001 before the first fetch), end offset.

        End offsets come from the consumer's cache; a partition it has not fetched from
        (an empty one, for instance) is asked of the broker, at most every 5 s."""
        rows = []
        now = time.monotonic()
        for tp in self.consumer.position(self.consumer.assignment()):
            where = (tp.topic, tp.partition)
            offsets = self.consumer.get_watermark_offsets(tp, cached=True)
            high = offsets[1] if offsets and offsets[1] is not None else -1
            if high < 0:
                high, asked_at = self._asked.get(where, (-1, 0.0))
                if now - asked_at >= 5.0:
                    try:
                        high = self.consumer.get_watermark_offsets(tp, timeout=2.0)[1]
                    except kafka.KafkaException:
                        high = -1
                    self._asked[where] = (high, now)
            rows.append((where, tp.offset, high))
        return rows

    def commit(self, asynchronous: bool = False) -> None:
        """Make DLQ records durable, then commit the consumed offsets (call after effects).

        ``asynchronous`` does not wait for the broker's answer: the effects are
        already durable, and a commit that is lost is covered by the next one (or
        the batch is redelivered, which idempotent effects absorb).  When DLQ records
        failed the publisher queues them again and raises: the caller retries."""
        self.dlq.flush()  # failed records are queued again by the publisher
        try:
            if asynchronous:
                self.consumer.commit(asynchronous=True)
            else:
                self.consumer.commit(asynchronous=False)
        except kafka.KafkaException as exc:
            if exc.args[0].code() != kafka.KafkaError._NO_OFFSET:
                raise

    def close(self) -> None:
        try:
            self.consumer.close()
        finally:
            if self._offsets is not None:
                self._offsets.close()
