"""What the consumer loops (projection, detector daemon) share: stopping on signals,
idle detection for ``--until-idle``, and the busy time their rates are measured on."""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

#: objects allocated (net) before a young collection: about one micro-batch of the
#: daemon's (CPython's 700 would collect dozens of times per batch, each pass promoting
#: the batch's own objects towards the old generation that holds the whole state)
GC_YOUNG = 50_000


@contextmanager
def tuned_gc() -> Iterator[None]:
    """For a loop that holds a large, long-lived state and allocates per batch: young
    collections run about once per batch rather than dozens of times, and what is alive
    when the loop calls :func:`freeze_alive` leaves the collector's passes.  At the end
    the collector is as it was (unfrozen: a loop run again in the same process, as
    backtests do, leaks nothing).  Measured with ``fraudgraph bench``."""
    thresholds = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def freeze_alive() -> None:
    """Within :func:`tuned_gc`, once the loop's services are open (connections, the
    restored rule state): everything alive leaves the collector's passes
    (``gc.freeze``), so no collection walks the large state again."""
    gc.collect()
    gc.freeze()


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
