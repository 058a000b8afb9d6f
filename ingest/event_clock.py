"""A clock of event time that one outlier cannot move.

State eviction and graph retention need "now" in event time.  The newest event
time seen is the wrong clock: it is untrusted data, and one transaction dated
2099 would make everything look idle (evicting every card's history, deleting all
transaction detail).  :class:`EventClock` reads the median of the last ``window``
event times instead, and never goes back: moving it needs more than half of a
window of far-off events, not one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

WINDOW = 101  # event times the median is taken over


class EventClock:
    """``now_ms``: the median of the last :data:`WINDOW` event times observed, never
    decreasing; None before anything was observed."""

    def __init__(self, window: int = WINDOW) -> None:
        self._recent: deque[int] = deque(maxlen=window)
        self.now_ms: int | None = None

    def observe(self, event_times: Iterable[int]) -> int | None:
        """Take a batch's event times (in stream order); return the clock after it."""
        self._recent.extend(event_times)
        if not self._recent:
            return self.now_ms
        ordered = sorted(self._recent)
        median = ordered[len(ordered) // 2]
        self.now_ms = median if self.now_ms is None else max(self.now_ms, median)
        return self.now_ms
