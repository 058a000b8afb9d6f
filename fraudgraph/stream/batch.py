"""The skeleton both consumer loops (the detector daemon, the projector) share: named
stages timed from outside, and :class:`BatchCommit`, the one object that ends a batch.

A batch's effects become durable in one documented order (at-least-once delivery,
idempotent effects): outputs queued on the producer, PostgreSQL writes, then the
producer flushed (every output acknowledged by Kafka), the DLQ records flushed and the
consumed offsets committed, then (every ``checkpoint_every`` seconds) the state
checkpoint with the positions just committed.  A crash anywhere before the commit
redelivers the batch; outputs carry deterministic keys and the stores upsert.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from fraudgraph.stream.health import Health
from ingest.publish import Publisher
from ingest.source import TransactionSource

T = TypeVar("T")


class Checkpoint(Protocol):
    def checkpoint(self, source: TransactionSource, force: bool = False) -> None: ...


class StageTimer:
    """Seconds per named stage of the current batch: ``with timer("decide"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = time.perf_counter() - started

    def take(self) -> dict[str, float]:
        """The batch's stage times; the next batch starts from none."""
        seconds, self.seconds = self.seconds, {}
        return seconds


class BatchCommit:
    """Ends a batch.  Queue outputs with :meth:`publish`, write PostgreSQL with
    :meth:`store`, then :meth:`commit`; at a clean stop, :meth:`close`.

    With ``health`` each step is retried with backoff while its service is away
    (until ``stop``); without, a failure propagates (the caller's restart redelivers).
    ``asynchronous``: the offset commit does not wait for the broker's answer
    (everything before it is durable; a lost commit means a redelivery)."""

    def __init__(self, source: TransactionSource, *, out: Publisher | None = None,
                 state: Checkpoint | None = None, health: Health | None = None,
                 stop: threading.Event | None = None, asynchronous: bool = False) -> None:
        self.source, self.out, self.state = source, out, state
        self.health, self.stop = health, stop or threading.Event()
        self.asynchronous = asynchronous

    def _run(self, service: str, action: Callable[..., T], *args: Any) -> T:
        if self.health is None:
            return action(*args)
        return self.health.retrying(service, self.stop, action, *args)

    def publish(self, records: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Queue (topic, key, value) records on the producer (sent in the background)."""
        assert self.out is not None
        for topic, key, value in records:
            self.out.send(topic, key, value)

    def store(self, action: Callable[..., T], *args: Any) -> T:
        """A PostgreSQL write of the batch (idempotent: it may run again on a retry)."""
        return self._run("postgres", action, *args)

    def commit(self) -> float:
        """Flush the producer, then the DLQ records and the offsets, then checkpoint;
        return the wall-clock ms at which the outputs were acknowledged."""
        if self.out is not None:
            self._run("kafka", self.out.flush)  # failed records are queued again
        published_ms = time.time() * 1000
        self._run("kafka", self.source.commit, self.asynchronous)
        if self.state is not None:
            self.state.checkpoint(self.source)
        return published_ms

    def close(self) -> None:
        """A clean stop: the last commit, confirmed by the broker, and a checkpoint."""
        self._run("kafka", self.source.commit)
        if self.state is not None:
            self.state.checkpoint(self.source, force=True)
