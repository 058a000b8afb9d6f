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
           "transient"]


def transient(exc: BaseException) -> bool:
    """Whether a driver error may go away by itself (the server is away or restarting,
    a deadlock, a lost session): retry.  Anything else the driver raises (a
    constraint, a memory limit, a syntax error) recurs on every try."""
    return isinstance(exc, ServiceUnavailable | SessionExpired | TransientError)


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
