"""Error classes: a transient failure is retried (the service is away); a permanent one
is isolated to its rows and the rest goes on (fakes behind Health's own interface)."""

from __future__ import annotations

import threading

import psycopg2
import pytest
from neo4j.exceptions import (
    ClientError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)
from psycopg2 import errors

from fraudgraph.stream.health import Health, isolating, transient
from ingest import kafka
from ingest.publish import PublishError, UndeliverableError

TRANSIENT = [
    ServiceUnavailable("neo4j is away"),
    SessionExpired("session lost"),
    TransientError("deadlock"),
    psycopg2.OperationalError("server closed the connection unexpectedly"),
    psycopg2.InterfaceError("connection already closed"),
    errors.AdminShutdown("terminating connection due to administrator command"),
    errors.CannotConnectNow("the database system is starting up"),
    errors.DeadlockDetected("deadlock detected"),
    PublishError("3 record(s) failed"),
    kafka.KafkaException(kafka.KafkaError(kafka.KafkaError._TRANSPORT)),
    kafka.KafkaException(kafka.KafkaError(kafka.KafkaError.NOT_LEADER_FOR_PARTITION)),
    kafka.KafkaException(kafka.KafkaError(kafka.KafkaError._NO_OFFSET)),
]
PERMANENT = [
    ClientError("Neo.ClientError.Statement.SyntaxError"),
    Neo4jError._hydrate_neo4j(code="Neo.TransientError.General.MemoryPoolOutOfMemoryError",
                              message="the transaction memory limit (a query too large)"),
    errors.ProgramLimitExceeded("index row size 5200 exceeds btree maximum"),
    errors.UntranslatableCharacter("unsupported Unicode escape sequence (a NUL)"),
    errors.UniqueViolation("duplicate key"),
    UndeliverableError("Kafka refuses a record for good"),
    kafka.KafkaException(kafka.KafkaError(kafka.KafkaError.MSG_SIZE_TOO_LARGE)),
    ValueError("a bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_failures_are_retried_until_the_service_is_back(exc: Exception) -> None:
    assert transient(exc)
    health, calls = Health(), []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise exc
        return "done"

    stop = threading.Event()
    stop.wait = lambda _delay=None: False  # type: ignore[method-assign]  # no real backoff
    assert health.retrying("postgres", stop, flaky) == "done"
    assert len(calls) == 3 and not health.degraded


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_permanent_failures_propagate_at_once(exc: Exception) -> None:
    assert not transient(exc)
    health, calls = Health(), []

    def broken() -> None:
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)):
        health.retrying("postgres", threading.Event(), broken)
    assert len(calls) == 1 and not health.degraded
    with pytest.raises(type(exc)):
        health.attempt("neo4j", broken)


ROW_ERRORS = [
    Neo4jError._hydrate_neo4j(code="Neo.ClientError.Schema.ConstraintValidationFailed",
                              message="already exists"),
    errors.ProgramLimitExceeded("index row size 5200 exceeds btree maximum"),
    errors.UntranslatableCharacter("unsupported Unicode escape sequence (a NUL)"),
    errors.UniqueViolation("duplicate key"),
]


@pytest.mark.parametrize("exc", ROW_ERRORS, ids=lambda e: type(e).__name__)
def test_a_permanent_failure_is_isolated_to_its_rows_and_the_rest_is_written(
        exc: Exception) -> None:
    written: list[int] = []
    rejected: list[tuple[int, BaseException]] = []

    def write(rows: list[int]) -> None:
        if 13 in rows or 40 in rows:  # the server refuses any statement holding these
            raise exc
        written.extend(rows)

    isolating(list(range(64)), write, lambda row, e: rejected.append((row, e)))
    assert sorted(written) == [n for n in range(64) if n not in (13, 40)]
    assert [row for row, _ in rejected] == [13, 40]
    assert all(e is exc for _, e in rejected)


@pytest.mark.parametrize("exc", [
    ClientError("Neo.ClientError.Statement.SyntaxError"), errors.UndefinedTable("no table"),
    errors.InsufficientPrivilege("permission denied"), ValueError("a bug")],
    ids=lambda e: type(e).__name__)
def test_a_failure_of_every_row_stops_loudly_instead_of_dead_lettering_them(
        exc: Exception) -> None:
    rejected: list[int] = []

    def write(rows: list[int]) -> None:
        raise exc

    with pytest.raises(type(exc)):
        isolating(list(range(8)), write, lambda row, e: rejected.append(row))
    assert rejected == []


def test_a_transient_failure_while_isolating_propagates_for_the_caller_to_retry() -> None:
    def write(rows: list[int]) -> None:
        raise errors.AdminShutdown("restarting")

    with pytest.raises(errors.AdminShutdown):
        isolating([1, 2, 3], write, lambda row, e: None)
