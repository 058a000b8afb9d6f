"""What the consumer loops (projection, detector daemon) share: stopping on signals,
idle detection for ``--until-idle``, and the busy time their rates are measured on."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM / SIGINT (handlers installed from the main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _s, _f: stop.set())
    return stop


class IdleWatch:
    """Tells a loop when no message arrived for ``until_idle`` seconds (None: never).

    Time spent joining the consumer group does not count as idle."""

    def __init__(self, until_idle: float | None) -> None:
        self.until_idle = until_idle
        self.since = time.monotonic()

    def busy(self) -> None:
        self.since = time.monotonic()

    def expired(self, assigned: bool) -> bool:
        """Called after an empty poll; True when the loop should stop."""
        if not assigned:
            self.since = time.monotonic()
            return False
        return self.until_idle is not None and time.monotonic() - self.since >= self.until_idle


@dataclass
class LoopStats:
    first_batch_at: float = 0.0  # monotonic time the first non-empty batch arrived
    last_commit_at: float = 0.0  # monotonic time the last batch was committed

    def batch_started(self) -> None:
        self.first_batch_at = self.first_batch_at or time.monotonic()

    def committed(self) -> None:
        self.last_commit_at = time.monotonic()

    @property
    def busy_seconds(self) -> float:
        """From the first message to the last commit (excludes start-up and idle waiting)."""
        return max(self.last_commit_at - self.first_batch_at, 0.0)
