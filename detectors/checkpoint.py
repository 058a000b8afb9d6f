"""Rule-state checkpoints: the streaming rules' state together with the input
offsets it reflects, so a daemon restarted after a crash decides as if it never
stopped.

A checkpoint is written after a batch's effects are durable (its decisions
acknowledged by Kafka, its flags in PostgreSQL), so everything before its
offsets is done.  On restart the daemon restores the state and resumes *at the
checkpoint's offsets*, which are at or before the committed ones: the batches
in between are decided again (same keys, idempotent stores) with the state they
first saw.  Without a checkpoint a restarted daemon would start with empty
histories (a card's velocity window, a device's cards, a user's profile) and
miss what needs the past.

The file is MessagePack (data only, nothing executable), written to a temporary
file, fsynced and renamed into place, with mode 0600 in the data folder.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger(__name__)

FORMAT = 2


def _encode_other(value: Any) -> Any:
    if isinstance(value, deque):
        return list(value)
    raise TypeError(f"cannot checkpoint {type(value).__name__}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_encode_other)  # dataclasses, sets, tuples: native
Offsets = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


@dataclass(frozen=True)
class Checkpoint:
    offsets: Offsets
    state: dict[str, Any]
    rules_version: str
    written_at: float


def path_for(data_dir: Path, group: str, topic: str) -> Path:
    """One checkpoint per consumer group and input topic (one daemon per group and host)."""
    def safe(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return data_dir / "checkpoints" / f"{safe(group)}--{safe(topic)}.msgpack"


def save(path: Path, offsets: Offsets, state: dict[str, Any], rules_version: str) -> int:
    """Write atomically; return the size in bytes."""
    data = _ENCODER.encode({
        "format": FORMAT, "rules_version": rules_version, "written_at": time.time(),
        "offsets": [[topic, partition, offset] for (topic, partition), offset in offsets.items()],
        "state": state})
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per writer
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                       "wb") as handle:
            handle.write(data)  # the whole buffer (a bare os.write may stop short)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)
    return len(data)


def remove_stale(path: Path) -> int:
    """Remove the temporary files of writers that died mid-write (killed with their
    daemon); returns how many."""
    stale = list(path.parent.glob(f"{path.name}.*.tmp")) if path.parent.exists() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def load(path: Path, rules_version: str) -> Checkpoint | None:
    """The checkpoint at ``path``; None (with a warning) when there is none, it is
    unreadable, or it was written under other rules (a state for other windows
    and limits is not this configuration's past)."""
    if not path.exists():
        return None
    try:
        raw = msgspec.msgpack.decode(path.read_bytes())
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
        checkpoint = Checkpoint(
            offsets={(str(t), int(p)): int(o) for t, p, o in raw["offsets"]},
            state=raw["state"], rules_version=str(raw["rules_version"]),
            written_at=float(raw["written_at"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, msgspec.DecodeError) as exc:
        log.warning("ignoring the rule-state checkpoint %s (%s): starting with empty state",
                    path, exc)
        return None
    if checkpoint.rules_version != rules_version:
        log.warning("the rule-state checkpoint %s is for rules %s, not %s: starting with "
                    "empty state", path, checkpoint.rules_version, rules_version)
        return None
    return checkpoint
