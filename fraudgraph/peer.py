"""The Quix Streams peer of `fraudgraph bench --peer quix` (``peers/quix_legacy.py``): its
own virtual environment in the cache folder, created on first use from the hash-pinned
``peers/requirements-quix.txt`` (Quix Streams pins an older confluent-kafka than
fraudgraph's, so it cannot share ``.venv``), and one run of it over a topic."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudgraph.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "peers" / "quix_legacy.py"
LOCK = ROOT / "peers" / "requirements-quix.txt"


@dataclass(frozen=True)
class Reference:
    """A reference run over the same topic as the bench's daemon (this peer, or the
    daemon one message at a time): messages decided, seconds from the first to the last,
    CPU seconds; ``agreement``: the share of its decisions equal to the daemon's (None:
    not compared)."""

    messages: int
    seconds: float
    cpu_seconds: float
    agreement: float | None = None

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "per_second": round(self.per_second, 1),
                "cpu_seconds": round(self.cpu_seconds, 2),
                "agreement": None if self.agreement is None else round(self.agreement, 4)}


def python(cache_dir: Path) -> Path:
    """The peer environment's interpreter, installed when missing or when the lock
    changed (pip's cache makes a reinstall quick)."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    venv = cache_dir / f"peer-quix-{digest}"
    interpreter = venv / "bin" / "python"
    if (venv / ".installed").exists():
        return interpreter
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                       capture_output=True)
        subprocess.run([str(interpreter), "-m", "pip", "install", "-q", "--require-hashes",
                        "-r", str(LOCK)], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or "").strip().splitlines()[-1:] or [str(exc)]
        raise ConfigError(f"could not install the Quix Streams peer in {venv}: {detail[0]} "
                          "(it needs PyPI or a pip cache holding its packages)") from None
    (venv / ".installed").touch()
    return interpreter


def run(cache_dir: Path, bootstrap: str, topic: str, out: str, group: str, count: int,
        state_dir: Path) -> Reference:
    """Run the peer over the first ``count`` messages of ``topic`` (decisions to ``out``)."""
    done = subprocess.run(
        [str(python(cache_dir)), str(APP), "--bootstrap", bootstrap, "--topic", topic,
         "--out", out, "--group", group, "--count", str(count), "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=1800)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"the Quix Streams peer failed (exit {done.returncode}): "
                           + " / ".join(tail))
    figures = json.loads(lines[-1])
    return Reference(int(figures["messages"]), float(figures["seconds"]),
                     float(figures["cpu_seconds"]))
