"""Service health of a long-running process: which of Kafka, Neo4j and PostgreSQL is
failing now, how an action is retried while one is away, and what /healthz says.

One :class:`Health` per process, passed to whatever talks to the services (the
daemon's loop and its worker thread share it).  A failure is an outage (retried with
backoff, reported degraded) only when it may go away by itself (:func:`transient`:
the server is away, restarting, a deadlock); a permanent one (a row the server
refuses, a query over a memory limit) propagates at once, and the caller isolates the
offending rows (:func:`isolating`) instead of wedging the stream behind a misleading
"degraded".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fraudgraph import metrics
from graph import driver as neo4j_errors
from graph.driver import Neo4jError, ServiceUnavailable
from ingest import kafka
from ingest.publish import PublishError, UndeliverableError
from storage import InterfaceError, OperationalError
from storage import row_error as postgres_row_error
from storage import transient as postgres_transient

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
LOG_EVERY = 30.0  # seconds between repeated outage log lines of one service
STALLED_AFTER = 30.0  # seconds without a loop pass before /healthz says degraded


def transient(exc: BaseException) -> bool:
    """Whether a failure may go away by itself (retried) rather than recur (isolated)."""
    if isinstance(exc, PublishError):
        return True  # the publisher queued the failed records again
    if isinstance(exc, kafka.KafkaException):
        # a broker restarting answers with many codes (transport, not leader, no
        # coordinator, unknown partition, timeouts): all pass; what recurs is a fatal
        # client error or a refusal of the request itself
        error = exc.args[0] if exc.args else None
        if error is None or not hasattr(error, "code"):
            return True
        return not (error.fatal() or error.code() in _KAFKA_PERMANENT)
    return neo4j_errors.transient(exc) or postgres_transient(exc)


_KAFKA_PERMANENT = frozenset(
    getattr(kafka.KafkaError, name) for name in (
        "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_MSG", "_INVALID_ARG",
        "TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED", "SASL_AUTHENTICATION_FAILED", "_AUTHENTICATION",
        "INVALID_CONFIG", "UNSUPPORTED_VERSION", "INVALID_REQUEST")
    if hasattr(kafka.KafkaError, name))


def row_error(exc: BaseException) -> bool:
    """Whether a failure is about the rows sent (a value or a row the server refuses),
    not the service or the code: only then does sending them apart help."""
    if isinstance(exc, UndeliverableError):
        return True
    return neo4j_errors.row_error(exc) or postgres_row_error(exc)


def isolating(rows: list[R], write: Callable[[list[R]], Any],
              reject: Callable[[R, BaseException], None]) -> None:
    """Write ``rows``; when the server refuses some of them (:func:`row_error`) split
    them in halves until each offending row is alone and hand it to ``reject`` (the
    others are written).  Any other failure propagates: a transient one for the
    caller to retry (``write`` is idempotent), and one that would fail every row (a
    missing table, a permission, a bug) to stop the process loudly rather than send
    every row to the dead letters."""
    if not rows:
        return
    try:
        write(rows)
    except Exception as exc:
        if transient(exc) or not row_error(exc):
            raise
        if len(rows) == 1:
            reject(rows[0], exc)
            return
        middle = len(rows) // 2
        isolating(rows[:middle], write, reject)
        isolating(rows[middle:], write, reject)


def failed_service(exc: BaseException, default: str) -> str:
    """The service an error came from (an action may touch two), else ``default``."""
    if isinstance(exc, Neo4jError | ServiceUnavailable):
        return "neo4j"
    if isinstance(exc, OperationalError | InterfaceError):
        return "postgres"
    if isinstance(exc, kafka.KafkaException | PublishError):
        return "kafka"
    return default


def _problem(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


class Health:
    """The services failing now (``degraded``; the gauge ``fraudgraph_detector_degraded``
    carries the same for Prometheus) and the time of the loop's last pass."""

    def __init__(self, log_every: float = LOG_EVERY) -> None:
        self.degraded: set[str] = set()
        self.log_every = log_every
        self.last_pass = time.monotonic()
        self._logged_at: dict[str, float] = {}

    def down(self, service: str, problem: str, doing: str) -> None:
        """Mark ``service`` degraded; log it once per ``log_every`` seconds."""
        metrics.DETECTOR_DEGRADED.labels(service).set(1)
        self.degraded.add(service)
        if time.monotonic() - self._logged_at.get(service, -self.log_every) >= self.log_every:
            log.warning("%s unavailable (%s); %s", service, problem, doing)
            self._logged_at[service] = time.monotonic()

    def up(self, service: str) -> None:
        """Clear the degraded mark of ``service`` (logged when there was one)."""
        if service in self.degraded:
            log.warning("%s is back", service)
            self.degraded.discard(service)
            self._logged_at.pop(service, None)
        metrics.DETECTOR_DEGRADED.labels(service).set(0)

    def attempt(self, service: str, action: Callable[[], Any]) -> bool:
        """Run ``action`` once; on a service failure mark it degraded and return False,
        so the caller goes on with what it has."""
        try:
            action()
        except Exception as exc:
            if not transient(exc):
                raise
            self.down(failed_service(exc, service), _problem(exc),
                      "going on with the last known state")
            return False
        self.up(service)
        return True

    def retrying(self, service: str, stop: threading.Event, action: Callable[..., T],
                 *args: Any) -> T:
        """Run ``action(*args)`` until it succeeds, backing off (0.25 s doubling to 10 s)
        while the service is away; gives up (re-raises) when ``stop`` is set, and at
        once on a permanent failure (not :func:`transient`)."""
        delay, failed = 0.25, {service}
        while True:
            try:
                result = action(*args)
            except Exception as exc:
                if not transient(exc):
                    raise
                down = failed_service(exc, service)
                failed.add(down)
                self.down(down, _problem(exc), "retrying with backoff")
                if stop.is_set():
                    raise
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            for name in failed:  # the action went through: what it touched is back
                self.up(name)
            return result

    def passed(self) -> None:
        """The loop made a pass (for the stall check of :meth:`report`)."""
        self.last_pass = time.monotonic()

    def report(self, **detail: Any) -> tuple[bool, dict[str, Any]]:
        """What /healthz answers: ok unless a service is degraded or the loop stalled."""
        stalled = time.monotonic() - self.last_pass
        degraded = sorted(self.degraded)
        ok = stalled < STALLED_AFTER and not degraded
        return ok, {"status": "ok" if ok else "degraded", "degraded": degraded,
                    "seconds_since_progress": round(stalled, 1), **detail}
