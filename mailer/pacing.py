"""A thread-safe pacer: never more than ``rate`` grants in any one-second window.

A plain token bucket with capacity ``rate`` lets up to twice the rate
through in one second (a full bucket plus its refill), which is exactly how
SES throttling gets triggered. Here:

* grants are scheduled ``1/rate`` apart (smooth pacing keeps the pipe full;
  the schedule, not the late wake-ups, sets the pace, so it does not drift), and
* a grant is only given if the ``floor(rate)``-th previous *actual* grant is at
  least one second old: the sliding-window guarantee holds for the moments
  callers really proceed, even when threads wake up late and bunch together.

Waiting happens outside the lock, so many worker threads can wait at once.
``clock``/``wait`` are injectable for tests.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable

# The window is a little longer than a second so that the moment a caller
# really reaches the network (a few ms after its grant, on a busy machine)
# still keeps to the limit. Costs at most 2% of throughput.
WINDOW = 1.02
# After an idle spell, at most this much of the schedule is caught up at once.
CATCH_UP = 0.25


class RateLimiter:
    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None):
        """``rate`` None or <= 0 means unlimited. ``wait(seconds)`` returns True if stopped."""
        self.rate = rate if rate and rate > 0 else None
        self.clock = clock
        self.stop_event = threading.Event()
        self.wait = wait or self.stop_event.wait
        self._lock = threading.Lock()
        self._next = -math.inf  # scheduled time of the next grant
        cap = max(1, math.floor(self.rate)) if self.rate else 1
        self._granted: collections.deque[float] = collections.deque(maxlen=cap)

    def _try(self) -> float:
        """Grant now (returns 0) or say how long to wait before trying again."""
        with self._lock:
            now = self.clock()
            if self.rate is None:
                return 0.0
            due = self._next
            if len(self._granted) == self._granted.maxlen:
                due = max(due, self._granted[0] + WINDOW)
            if due > now:
                return due - now
            self._granted.append(now)
            # Keep to the schedule after late wake-ups (no drift); after an idle
            # spell only catch up a little (the window check bounds it anyway).
            start = now if self._next == -math.inf else max(self._next, now - CATCH_UP)
            self._next = start + 1.0 / self.rate
            return 0.0

    def acquire(self) -> bool:
        """Block until this caller may proceed. False if ``stop()`` was called meanwhile."""
        while not self.stop_event.is_set():
            delay = self._try()
            if delay <= 0:
                return True
            if self.wait(delay):
                return False
        return False

    def stop(self) -> None:
        self.stop_event.set()
