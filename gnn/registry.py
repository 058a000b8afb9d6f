"""The model registry: a PostgreSQL table (``gnn_models``, in compose/sql/schema.sql)
and the artifact folders under ``<data dir>/models/<version>/``.  No torch here, so
``fraudgraph gnn models`` lists models without loading any.

A training run holds a PostgreSQL advisory lock for its whole length, so two
schedulers (or a scheduler and an operator) never train at once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg2.extensions import connection as Connection
from psycopg2.extras import Json

TRAIN_LOCK = 7_244_318_002  # pg_try_advisory_lock key of a training run


class TrainingLocked(RuntimeError):
    """Another training run holds the lock."""


@dataclass(frozen=True)
class ModelRow:
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


def new_version(now: float | None = None) -> str:
    """``gnn-YYYYmmddTHHMMSS-xxxx``: sortable, unique enough for one registry."""
    moment = time.time() if now is None else now
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%S")
    return f"gnn-{stamp}-{hashlib.blake2b(repr(moment).encode(), digest_size=2).hexdigest()}"


def folder(data_dir: Path, version: str) -> Path:
    return data_dir / "models" / version


@contextmanager
def training_lock(conn: Connection) -> Iterator[None]:
    """Hold the training lock (session level) or raise :class:`TrainingLocked`."""
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
    with conn, conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO gnn_models ({_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false, NULL) "
            "ON CONFLICT (version) DO NOTHING",
            (row.version, row.trained_at, row.data_from_ms, row.data_to_ms, row.cut_ms,
             row.entities, row.metric, Json(row.metrics), Json(row.config), row.path))


def promote(conn: Connection, version: str) -> None:
    """Make ``version`` the champion (one transaction: never two, never none between)."""
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE gnn_models SET promoted = false WHERE promoted AND version <> %s",
                    (version,))
        cur.execute("UPDATE gnn_models SET promoted = true, promoted_at = now() "
                    "WHERE version = %s AND NOT promoted", (version,))


def models(conn: Connection, limit: int = 50) -> list[ModelRow]:
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM gnn_models ORDER BY trained_at DESC, version DESC "
                    "LIMIT %s", (limit,))
        return [ModelRow(*row) for row in cur.fetchall()]


def get(conn: Connection, version: str) -> ModelRow | None:
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM gnn_models WHERE version = %s", (version,))
        row = cur.fetchone()
    return ModelRow(*row) if row else None


def champion(conn: Connection) -> ModelRow | None:
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM gnn_models WHERE promoted")
        row = cur.fetchone()
    return ModelRow(*row) if row else None
