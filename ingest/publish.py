"""A batching, idempotent Kafka publisher that accounts for every delivery.

``send`` never drops a record: when librdkafka's queue is full it serves
delivery reports and retries.  ``flush`` raises if any record failed (and queues
exactly the failed ones again), so a caller never reports success for data that
did not reach the broker, and a retry duplicates nothing that was delivered.
"""

from __future__ import annotations

from typing import Any

from ingest import kafka


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record yet; the failed ones are queued again,
    so calling ``flush`` again (after a pause) completes the delivery."""


class UndeliverableError(RuntimeError):
    """A record Kafka will never take (too large, not authorised): retrying cannot help."""


class Publisher:
    def __init__(self, bootstrap: str, **overrides: Any) -> None:
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
        self._failed: list[tuple[str, bytes | None, bytes]] = []
        self.first_error: str | None = None
        self.fatal: str | None = None

    @property
    def failed(self) -> int:
        return len(self._failed)

    def _delivered(self, error: Any, message: Any) -> None:
        if error is None:
            return
        if self.first_error is None:
            self.first_error = str(error)
        if not error.retriable() and error.code() != kafka.KafkaError._MSG_TIMED_OUT:
            self.fatal = self.fatal or f"{message.topic()}: {error}"
        self._failed.append((message.topic(), message.key(), message.value()))

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                self.producer.poll(0.05)  # queue full: serve delivery reports, then retry
        self.sent += 1
        if self.sent % 1000 == 0:
            self.producer.poll(0)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every record is acknowledged.  Raises PublishError when some
        failed (they are queued again, exactly those: call flush again) or are still
        queued, and UndeliverableError for a record no retry can deliver."""
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
