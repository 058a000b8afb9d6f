"""One Neo4j driver per process, and a health check."""

from __future__ import annotations

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import (
    AuthError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

__all__ = ["AuthError", "Neo4jError", "ServiceUnavailable", "TransientError", "connect", "ping",
           "row_error", "transient"]


def transient(exc: BaseException) -> bool:
    """Whether a driver error may go away by itself (the server is away or restarting,
    a deadlock, a lost session): retry.  Anything else the driver raises (a
    constraint, a syntax error) recurs on every try, and so does a query over the
    transaction memory limit, which Neo4j reports as a TransientError."""
    if isinstance(exc, Neo4jError) and any(
            marker in (exc.code or "") for marker in _RECURRING):
        return False
    return isinstance(exc, ServiceUnavailable | SessionExpired | TransientError)


#: TransientError codes that recur for the same query (its size, not the moment)
_RECURRING = ("MemoryPoolOutOfMemoryError", "TransactionMemoryLimit", "OutOfMemory")


def row_error(exc: BaseException) -> bool:
    """Whether a driver error is about the data sent (a constraint, a bad value), so
    that sending the rows apart finds the offending ones; not a permission, a
    missing database or a broken query, which fail for every row."""
    code = getattr(exc, "code", None) or ""
    return isinstance(exc, Neo4jError) and (
        "ConstraintValidationFailed" in code or ".Statement.TypeError" in code
        or ".Statement.ArgumentError" in code or ".Statement.ArithmeticError" in code)


def connect(uri: str, user: str, password: str, **config: object) -> Driver:
    """Create the process's driver (the caller closes it)."""
    config.setdefault("notifications_min_severity", "OFF")  # hints belong in tests, not logs
    return GraphDatabase.driver(uri, auth=(user, password), **config)  # type: ignore[arg-type]


def ping(uri: str, user: str, password: str, timeout: float = 5.0) -> int:
    """Authenticate and run ``RETURN 1``; return the value. Raises the driver's errors."""
    with connect(uri, user, password, connection_timeout=timeout,
                 max_transaction_retry_time=0) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS ok", database_="neo4j")
        return int(records[0]["ok"])
