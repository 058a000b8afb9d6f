"""The model registries' tables (compose/sql/schema.sql): ``gnn_models`` (the GNN) and
``risk_models`` (the learned per-transaction model): register, promote, read the
champion and the list; and the training lock.

Every function takes an open connection (the blocklist store's ``conn``) and
commits its own transaction.  At most one row is promoted (a unique index); a
promotion moves the mark in one transaction, so there is never none between.
The rows are :class:`ModelRow` (no torch: listing loads no model).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extras import Json

TRAIN_LOCK = 7_244_318_002  # pg_try_advisory_lock key of a GNN training run
RISK_TRAIN_LOCK = 7_244_318_003  # ... of a learned model's training run


class TrainingLocked(RuntimeError):
    """Another training run holds the training lock."""


@dataclass(frozen=True)
class ModelRow:
    """A registered model: one row of ``gnn_models`` (columns in this order)."""

    version: str
    trained_at: datetime
    data_from_ms: int
    data_to_ms: int
    cut_ms: int
    entities: int
    metric: float
    metrics: dict[str, Any]
    config: dict[str, Any]
    path: str
    promoted: bool
    promoted_at: datetime | None


_COLUMNS = ("version, trained_at, data_from_ms, data_to_ms, cut_ms, entities, metric, metrics, "
            "config, path, promoted, promoted_at")
#: the registries: the GNN's, and the learned per-transaction model's (its artifact in
#: the row's ``artifact`` column)
GNN, RISK = "gnn_models", "risk_models"
_TABLES = {GNN, RISK}


def _sql(template: str, table: str) -> sql.Composed:
    """A statement of one of the registry tables (a fixed name, never user input)."""
    if table not in _TABLES:
        raise ValueError(f"not a model registry table: {table!r}")
    return sql.SQL(template).format(table=sql.Identifier(table), columns=sql.SQL(_COLUMNS))


_INSERT = ("INSERT INTO {table} ({columns}, artifact) VALUES "
           "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false, NULL, %s) "
           "ON CONFLICT (version) DO NOTHING")
_INSERT_GNN = ("INSERT INTO {table} ({columns}) VALUES "
               "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false, NULL) "
               "ON CONFLICT (version) DO NOTHING")
_DEMOTE = "UPDATE {table} SET promoted = false WHERE promoted AND version <> %s"
_PROMOTE = ("UPDATE {table} SET promoted = true, promoted_at = now() "
            "WHERE version = %s AND NOT promoted")
_LIST = "SELECT {columns} FROM {table} ORDER BY trained_at DESC, version DESC LIMIT %s"
_GET = "SELECT {columns} FROM {table} WHERE version = %s"
_CHAMPION = "SELECT {columns} FROM {table} WHERE promoted"
_ARTIFACT = "SELECT artifact FROM {table} WHERE version = %s"


@contextmanager
def training_lock(conn: Connection, key: int = TRAIN_LOCK) -> Iterator[None]:
    """Hold the training lock (a session-level advisory lock, for the whole run, so two
    schedulers or a scheduler and an operator never train at once) or raise
    :class:`TrainingLocked` at once, without waiting."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        row = cur.fetchone()
    if not (row and row[0]):
        what = "gnn" if key == TRAIN_LOCK else "model"
        raise TrainingLocked(f"another `fraudgraph {what} train` or scheduler is training now")
    try:
        yield
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (key,))


def record(conn: Connection, row: ModelRow, table: str = GNN, artifact: str = "") -> None:
    """Register a model, not promoted (``row.promoted`` is ignored); idempotent: a
    version already registered is left as it is.  ``artifact``: the model itself
    (the :data:`RISK` registry keeps it in the row)."""
    values = (row.version, row.trained_at, row.data_from_ms, row.data_to_ms, row.cut_ms,
              row.entities, row.metric, Json(row.metrics), Json(row.config), row.path)
    with conn, conn.cursor() as cur:
        if table == GNN:
            cur.execute(_sql(_INSERT_GNN, table), values)
        else:
            cur.execute(_sql(_INSERT, table), (*values, artifact))


def promote(conn: Connection, version: str, table: str = GNN) -> None:
    """Make ``version`` the champion (one transaction: never two, never none between)."""
    with conn, conn.cursor() as cur:
        cur.execute(_sql(_DEMOTE, table), (version,))
        cur.execute(_sql(_PROMOTE, table), (version,))


def models(conn: Connection, limit: int = 50, table: str = GNN) -> list[ModelRow]:
    """The registered models, newest first."""
    with conn, conn.cursor() as cur:
        cur.execute(_sql(_LIST, table), (limit,))
        return [ModelRow(*row) for row in cur.fetchall()]


def get(conn: Connection, version: str, table: str = GNN) -> ModelRow | None:
    """The model ``version`` (None: not registered)."""
    with conn, conn.cursor() as cur:
        cur.execute(_sql(_GET, table), (version,))
        row = cur.fetchone()
    return ModelRow(*row) if row else None


def champion(conn: Connection, table: str = GNN) -> ModelRow | None:
    """The promoted model (None: none yet)."""
    with conn, conn.cursor() as cur:
        cur.execute(_sql(_CHAMPION, table))
        row = cur.fetchone()
    return ModelRow(*row) if row else None


def artifact(conn: Connection, version: str) -> str | None:
    """A learned model's artifact (:data:`RISK` registry); None: no such version."""
    with conn, conn.cursor() as cur:
        cur.execute(_sql(_ARTIFACT, RISK), (version,))
        row = cur.fetchone()
    return str(row[0]) if row else None
