"""PostgreSQL connections, health and provisioning (the stack creates the role and database).

All SQL takes parameters; identifiers go through ``psycopg2.sql.Identifier``.
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

__all__ = ["Connection", "InterfaceError", "OperationalError", "connect", "ping", "provision"]

OperationalError = psycopg2.OperationalError  # the server is away or refused the connection
InterfaceError = psycopg2.InterfaceError  # e.g. "connection already closed"

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
