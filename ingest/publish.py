"""A batching, idempotent Kafka publisher that accounts for every delivery.

``send`` never drops a record: when librdkafka's queue is full it serves
delivery reports and retries.  ``flush`` raises if any record failed, so a
caller never reports success for data that did not reach the broker.
"""

from __future__ import annotations

from typing import Any

from ingest import kafka


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record."""


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
        self.failed = 0
        self.first_error: str | None = None

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = str(error)

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
        """Wait until every record is acknowledged; raise PublishError otherwise (the
        caller resends what failed: the failures are counted once)."""
        remaining = self.producer.flush(timeout)
        if self.failed or remaining:
            error = PublishError(
                f"{self.failed} record(s) failed and {remaining} were still queued after "
                f"{timeout:.0f}s" + (f"; first error: {self.first_error}"
                                      if self.first_error else ""))
            self.failed, self.first_error = 0, None  # reported once: a retry starts afresh
            raise error
