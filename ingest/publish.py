"""A batching, idempotent Kafka publisher that accounts for every delivery.

``send`` never drops a record: when librdkafka's queue is full it serves
delivery reports and retries.  ``flush`` raises if any record failed (and queues
exactly the failed ones again), so a caller never reports success for data that
did not reach the broker, and a retry duplicates nothing that was delivered.

A record Kafka refuses for good (:data:`REFUSED_RECORD`: too large, invalid)
raises :class:`UndeliverableError`, at ``send`` or at ``flush`` — except from a
:class:`DeadLetterPublisher`: a bad message must not stop the stream because its
DLQ record is bad too, so such a record is logged, counted
(:attr:`Publisher.dropped`, for a metric) and dropped.  Failures of the topic or
the cluster (not authorised, unknown topic) are not the record's fault and are
raised either way.
"""

from __future__ import annotations

import logging
from typing import Any

from ingest import kafka

log = logging.getLogger(__name__)

#: Error codes that refuse one record for what it is; retrying it cannot help.
REFUSED_RECORD = frozenset({
    kafka.KafkaError.MSG_SIZE_TOO_LARGE,
    kafka.KafkaError.RECORD_LIST_TOO_LARGE,
    kafka.KafkaError.INVALID_RECORD,
    kafka.KafkaError.INVALID_MSG,
    kafka.KafkaError.INVALID_TIMESTAMP,
})


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record yet; the failed ones are queued again,
    so calling ``flush`` again (after a pause) completes the delivery."""


class UndeliverableError(RuntimeError):
    """A record Kafka will never take (too large, not authorised): retrying cannot help."""


class Publisher:
    #: log, count and drop a record Kafka refuses for good instead of raising
    drop_refused = False

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        """``overrides``: librdkafka settings."""
        conf: dict[str, Any] = {
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 512 * 1024,
            "on_delivery": self._delivered,
            "delivery.report.only.error": True,  # successes cost a callback each: skip them
        }
        conf.update(overrides)
        self.producer = kafka.producer(bootstrap, **conf)
        self.sent = 0
        #: records refused for good and dropped (DeadLetterPublisher only), so far
        self.dropped = 0
        self._failed: list[tuple[str, bytes | None, bytes]] = []
        self.first_error: str | None = None
        self.fatal: str | None = None

    @property
    def failed(self) -> int:
        return len(self._failed)

    def _delivered(self, error: Any, message: Any) -> None:
        if error is None:
            return
        if self.drop_refused and error.code() in REFUSED_RECORD:
            self._drop(message.topic(), message.key(), len(message.value() or b""), error)
            return
        if self.first_error is None:
            self.first_error = str(error)
        if not error.retriable() and error.code() != kafka.KafkaError._MSG_TIMED_OUT:
            self.fatal = self.fatal or f"{message.topic()}: {error}"
        self._failed.append((message.topic(), message.key(), message.value()))

    def _drop(self, topic: str, key: bytes | None, size: int, error: Any) -> None:
        self.dropped += 1
        log.error("dropped a record Kafka refuses for good: topic %s, key %r, %d bytes: %s",
                  topic, (key or b"")[:100], size, error)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one record (serving delivery reports while the queue is full).  A record
        librdkafka refuses at once (larger than ``message.max.bytes``) raises
        UndeliverableError (a DeadLetterPublisher drops it)."""
        while True:
            try:
                self.producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                self.producer.poll(0.05)  # queue full: serve delivery reports, then retry
            except kafka.KafkaException as exc:
                error = exc.args[0]
                if error.code() not in REFUSED_RECORD:
                    raise
                if self.drop_refused:
                    self._drop(topic, key, len(value), error)
                    return
                raise UndeliverableError(f"Kafka refuses a record for good ({topic}: "
                                         f"{error})") from None
        self.sent += 1
        if self.sent % 1000 == 0:
            self.producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every record is acknowledged.  Raises PublishError when some
        failed (they are queued again, exactly those: call flush again) or are still
        queued, and UndeliverableError for a record no retry can deliver (but a
        DeadLetterPublisher drops one refused for what it is)."""
        remaining = self.producer.flush(timeout)
        if self.fatal:
            raise UndeliverableError(f"Kafka refuses a record for good ({self.fatal})")
        if self._failed or remaining:
            failed, self._failed = self._failed, []
            error = PublishError(
                f"{len(failed)} record(s) failed and {remaining} were still queued after "
                f"{timeout:.0f}s" + (f"; first error: {self.first_error}"
                                      if self.first_error else ""))
            self.first_error = None
            for topic, key, value in failed:  # resent: the still queued ones are in flight
                self.send(topic, key, value)
            raise error


class DeadLetterPublisher(Publisher):
    """The publisher of DLQ records: one Kafka refuses for good (:data:`REFUSED_RECORD`)
    is logged, counted in :attr:`dropped` and dropped, so that no message stops the
    stream; every other failure is raised as by :class:`Publisher`."""

    drop_refused = True
