"""The GNN model registry's table, ``gnn_models`` (compose/sql/schema.sql): register,
promote, read the champion and the list; and the training lock.

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

from psycopg2.extensions import connection as Connection
from psycopg2.extras import Json

TRAIN_LOCK = 7_244_318_002  # pg_try_advisory_lock key of a training run


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
_INSERT = (f"INSERT INTO gnn_models ({_COLUMNS}) VALUES "
           "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false, NULL) "
           "ON CONFLICT (version) DO NOTHING")
_DEMOTE = "UPDATE gnn_models SET promoted = false WHERE promoted AND version <> %s"
_PROMOTE = ("UPDATE gnn_models SET promoted = true, promoted_at = now() "
            "WHERE version = %s AND NOT promoted")
_LIST = f"SELECT {_COLUMNS} FROM gnn_models ORDER BY trained_at DESC, version DESC LIMIT %s"
_GET = f"SELECT {_COLUMNS} FROM gnn_models WHERE version = %s"
_CHAMPION = f"SELECT {_COLUMNS} FROM gnn_models WHERE promoted"


@contextmanager
def training_lock(conn: Connection) -> Iterator[None]:
    """Hold the training lock (a session-level advisory lock, for the whole run, so two
    schedulers or a scheduler and an operator never train at once) or raise
    :class:`TrainingLocked` at once, without waiting."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (TRAIN_LOCK,))
        row = cur.fetchone()
    if not (row and row[0]):
        raise TrainingLocked("another `fraudgraph gnn train` or scheduler is training now")
    try:
        yield
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (TRAIN_LOCK,))


def record(conn: Connection, row: ModelRow) -> None:
    """Register a model, not promoted (``row.promoted`` is ignored); idempotent: a
    version already registered is left as it is."""
    with conn, conn.cursor() as cur:
        cur.execute(_INSERT, (row.version, row.trained_at, row.data_from_ms, row.data_to_ms,
                              row.cut_ms, row.entities, row.metric, Json(row.metrics),
                              Json(row.config), row.path))


def promote(conn: Connection, version: str) -> None:
    """Make ``version`` the champion (one transaction: never two, never none between)."""
    with conn, conn.cursor() as cur:
        cur.execute(_DEMOTE, (version,))
        cur.execute(_PROMOTE, (version,))


def models(conn: Connection, limit: int = 50) -> list[ModelRow]:
    """The registered models, newest first."""
    with conn, conn.cursor() as cur:
        cur.execute(_LIST, (limit,))
        return [ModelRow(*row) for row in cur.fetchall()]


def get(conn: Connection, version: str) -> ModelRow | None:
    """The model ``version`` (None: not registered)."""
    with conn, conn.cursor() as cur:
        cur.execute(_GET, (version,))
        row = cur.fetchone()
    return ModelRow(*row) if row else None


def champion(conn: Connection) -> ModelRow | None:
    """The promoted model (None: none yet)."""
    with conn, conn.cursor() as cur:
        cur.execute(_CHAMPION)
        row = cur.fetchone()
    return ModelRow(*row) if row else None
