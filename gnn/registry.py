"""The model registry's pure rules: version names, artifact folders and the promotion
rule.  No torch and no SQL here: the ``gnn_models`` table (compose/sql/schema.sql)
and its row type (``storage.models.ModelRow``) are :mod:`storage.models`', and the
artifacts live under ``<data dir>/models/<version>/``.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path


def new_version(now: float | None = None) -> str:
    """``gnn-YYYYmmddTHHMMSS-xxxx``: sortable, unique enough for one registry."""
    moment = time.time() if now is None else now
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%S")
    return f"gnn-{stamp}-{hashlib.blake2b(repr(moment).encode(), digest_size=2).hexdigest()}"


def folder(data_dir: Path, version: str) -> Path:
    """Where a version's artifacts are saved (the baseline in ``baseline/`` below it)."""
    return data_dir / "models" / version


def beats(metric: float, measured: bool, champion_metric: float | None) -> bool:
    """The promotion rule: a model replaces the champion when something measured it
    (fraud was reported after its cut-off: ``measured``) and its validation AP is
    above the champion's on the same split (no champion: any measured model)."""
    return measured and (champion_metric is None or metric > champion_metric)
