"""Fraud labels as the daemon takes them: ``fraud-labels`` read into per-partition
queues and handed out once the graph holds their transaction.

A label is *due* when its transaction's event time (its report time when it has
none, the earlier of the two when it has both) is at or before the time up to which
the graph is complete; labels of one partition are handed out in arrival order, so
the offset committed after them never passes one still waiting.  A label that does
not decode or validate (:func:`ingest.labels.decode_label`: a report time in the
future included, which would otherwise hold back every label after it) goes to the
dead-letter topic with its reason and is committed with its neighbours; a DLQ record
Kafka refuses for good is logged and counted (:attr:`LabelSource.dlq_dropped`), never
raised.

:meth:`LabelSource.known_ms` says up to which report time every label is handed
out, so the stream never decides a transaction before the labels it may see.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ingest import kafka
from ingest.dlq import dlq_record
from ingest.labels import LabelMessage, decode_label
from ingest.publish import DeadLetterPublisher
from ingest.transaction import MAX_FUTURE_MS, DecodeError

_LABEL_ENCODER = msgspec.json.Encoder()
INFINITY = float("inf")
MAX_PENDING = 200_000  # labels waiting for the graph; then stop reading until some are due


@dataclass(frozen=True)
class PendingLabel:
    """A label read and not handed out yet: due once the graph holds ``ready_ms``."""

    ready_ms: int
    reported_ms: int
    offset: int
    label: LabelMessage | None  # None: undecodable (already sent to the DLQ)
    event_ms: int | None = None
    topic: str = ""
    partition: int = 0


@dataclass
class DueLabels:
    """What :meth:`LabelSource.take_due` hands out: the labels, and the offsets to
    commit once their effects are durable (:meth:`LabelSource.commit`)."""

    labels: list[PendingLabel] = field(default_factory=list)
    offsets: list[kafka.TopicPartition] = field(default_factory=list)


class LabelSource:
    """The ``fraud-labels`` consumer of one daemon group (``<group>-labels``)."""

    def __init__(self, bootstrap: str, group: str, topic: str, dlq_topic: str, *,
                 from_beginning: bool,
                 rejected: Callable[[str], None] = lambda _reason: None,
                 max_future_ms: int | None = MAX_FUTURE_MS) -> None:
        """``rejected`` is told the reason of each label sent to the DLQ (a metric);
        ``max_future_ms``: how far ahead of the clock a report time may be (None: no
        limit, for backtests: pass the decoder config's)."""
        self.consumer = kafka.consumer(bootstrap, group)
        if from_beginning:
            self.consumer.subscribe([topic], on_assign=kafka.rewind_on_assign)
        else:
            self.consumer.subscribe([topic])
        self.dlq, self.dlq_topic = DeadLetterPublisher(bootstrap), dlq_topic
        self.max_future_ms = max_future_ms
        #: (topic, partition) -> FIFO of labels read, not handed out yet
        self.pending: dict[tuple[str, int], deque[PendingLabel]] = {}
        self.last_reported: dict[tuple[str, int], int] = {}
        self.rejected = rejected

    @property
    def dlq_dropped(self) -> int:
        """DLQ records Kafka refused for good and that were dropped (logged), so far."""
        return self.dlq.dropped

    def joined(self) -> bool:
        """Whether the consumer group has given this consumer its partitions."""
        return bool(self.consumer.assignment())

    def take_due(self, graph_ms: float) -> DueLabels:
        """Read what arrived (while fewer than :data:`MAX_PENDING` wait), then hand out,
        per partition in arrival order, the labels due at ``graph_ms``."""
        if sum(len(q) for q in self.pending.values()) < MAX_PENDING:
            for msg in self.consumer.consume(1000, 0.0):
                if msg.error():
                    kafka.consumer_error(msg.error())  # raises only a fatal one
                    continue
                self._take(msg)
        due = DueLabels()
        for (topic, partition), waiting in self.pending.items():
            last = None
            while waiting and (waiting[0].label is None or waiting[0].ready_ms <= graph_ms):
                pending = waiting.popleft()
                last = pending.offset
                if pending.label is not None:
                    due.labels.append(pending)
            if last is not None:
                due.offsets.append(kafka.TopicPartition(topic, partition, last + 1))
        return due

    def commit(self, offsets: list[kafka.TopicPartition]) -> None:
        """Flush the DLQ records of bad labels, then commit ``offsets`` (synchronously)."""
        self.dlq.flush()
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def known_ms(self) -> float:
        """The report time up to which every label is handed out: per assigned partition,
        the first label still waiting, else (read to the end) no limit, else the last
        label read; the lowest over the partitions (-inf before any assignment)."""
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
            label, event_ms = decode_label(raw, max_future_ms=self.max_future_ms)
        except DecodeError as error:
            key, value = dlq_record(raw, msg.key(), error, where[0], where[1], msg.offset() or 0)
            self.dlq.send(self.dlq_topic, key, value)
            self.rejected(error.reason)
            waiting.append(PendingLabel(0, 0, msg.offset() or 0, None))  # committed with others
            return
        reported_ms = label.reported_ms
        ready_ms = reported_ms if event_ms is None else min(event_ms, reported_ms)
        waiting.append(PendingLabel(ready_ms, reported_ms, msg.offset() or 0, label, event_ms,
                                    where[0], where[1]))
        self.last_reported[where] = reported_ms

    def dead_letter(self, pending: PendingLabel, reason: str, detail: str) -> None:
        """A label taken and then refused downstream (the store will never take it): to
        the DLQ with ``reason``, flushed by the next :meth:`commit`."""
        raw = _LABEL_ENCODER.encode(pending.label) if pending.label is not None else b""
        key, value = dlq_record(raw, None, DecodeError(reason, detail), pending.topic,
                                pending.partition, pending.offset)
        self.dlq.send(self.dlq_topic, key, value)
        self.rejected(reason)

    def close(self) -> None:
        self.consumer.close()
