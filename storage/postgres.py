"""PostgreSQL connections, health and provisioning (the stack creates the role and database).

All SQL takes parameters; identifiers go through ``psycopg2.sql.Identifier``.
"""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
from psycopg2 import errors, sql
from psycopg2.extensions import connection as Connection

__all__ = ["Connection", "InterfaceError", "OperationalError", "connect", "ping", "provision"]

OperationalError = psycopg2.OperationalError  # the server is away or refused the connection
InterfaceError = psycopg2.InterfaceError  # e.g. "connection already closed"

#: SQLSTATE classes that may go away by themselves: connection exception, insufficient
#: resources, operator intervention (shutdown, restart), transaction rollback (deadlock,
#: serialization), system error
_TRANSIENT_CLASSES = frozenset({"08", "53", "57", "40", "58"})
#: the same, as the exception types psycopg2 raises (a server error carries its code; the
#: types also classify errors raised without one)
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    InterfaceError, errors.ConnectionException, errors.AdminShutdown, errors.CrashShutdown,
    errors.CannotConnectNow, errors.TransactionRollback, errors.InsufficientResources,
    errors.DiskFull, errors.OutOfMemory, errors.TooManyConnections, errors.SystemError,
    errors.IoError, psycopg2.extensions.TransactionRollbackError)


def transient(exc: BaseException) -> bool:
    """Whether a PostgreSQL error may go away by itself (retry): a broken or refused
    connection, a server restarting, a deadlock.  A row the server refuses (a NUL in
    text, an index entry too large, a constraint) fails the same way every time."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if not isinstance(exc, psycopg2.Error):
        return False
    if exc.pgcode is not None:
        return exc.pgcode[:2] in _TRANSIENT_CLASSES
    # no server code: the connection itself failed ("server closed the connection")
    return type(exc) is OperationalError


def row_error(exc: BaseException) -> bool:
    """Whether a PostgreSQL error is about the data sent (a bad value, a constraint, a
    row over a limit: SQLSTATE classes 22, 23, 54), so that writing the rows apart
    finds the offending ones; not a missing table, a permission or a read-only
    server, which fail for every row."""
    if not isinstance(exc, psycopg2.Error):
        return False
    if exc.pgcode is not None:
        return exc.pgcode[:2] in {"22", "23", "54"}
    return isinstance(exc, psycopg2.DataError | psycopg2.IntegrityError
                      | errors.ProgramLimitExceeded)


_CREATE_ROLE = sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s")
_CREATE_DATABASE = sql.SQL("CREATE DATABASE {} OWNER {}")


def connect(dsn: str) -> Connection:
    """Open a connection (the caller closes it)."""
    return psycopg2.connect(dsn)


def ping(dsn: str) -> int:
    """Connect and run ``SELECT 1``; return the value. Raises psycopg2 errors."""
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        conn.close()


def provision(superuser_dsn: str, role: str, password: str, database: str) -> list[str]:
    """Create the application role and database if missing; an existing role is left as is.

    Idempotent; returns what it created (``role:<name>``, ``database:<name>``).
    """
    created: list[str] = []
    conn = connect(superuser_dsn)
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                cur.execute(_CREATE_ROLE.format(sql.Identifier(role)), (password,))
                created.append(f"role:{role}")
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(_CREATE_DATABASE.format(
                    sql.Identifier(database), sql.Identifier(role)))
                created.append(f"database:{database}")
    finally:
        conn.close()
    return created
