"""A thread-safe pacer: never more than ``rate`` grants in any one-second window.

A plain token bucket with capacity ``rate`` lets up to twice the rate
through in one second (a full bucket plus its refill), which is exactly how
SES throttling gets triggered. Here:

* each caller reserves a slot on a fixed schedule ``1/rate`` apart (smooth
  pacing keeps the pipe full, and late thread wake-ups do not shift the
  schedule, so the achieved rate does not drift down), and
* at its slot it is only let through if the ``floor(rate)``-th previous
  *actual* grant is more than a second old: the sliding-window guarantee
  holds for the moments callers really proceed, even when threads wake up
  late and bunch together.

Waiting happens outside the lock, so many worker threads can wait at once.
``clock``/``wait`` are injectable for tests.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable

# A hair over a second, so the moment a caller really reaches the network (a
# little after its grant) still keeps to the limit. Costs 0.5% of throughput.
WINDOW = 1.005
# After an idle spell, at most this much of the schedule is caught up (the
# window check bounds the burst anyway).
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
        self._next = -math.inf  # the next free slot of the schedule
        cap = max(1, math.floor(self.rate)) if self.rate else 1
        self._granted: collections.deque[float] = collections.deque(maxlen=cap)

    def _reserve(self) -> float:
        with self._lock:
            now = self.clock()
            slot = now if self._next == -math.inf else max(self._next, now - CATCH_UP)
            self._next = slot + 1.0 / self.rate
            return slot

    def _try(self, slot: float) -> float:
        """Grant now (returns 0) or say how long to wait before trying again."""
        with self._lock:
            now = self.clock()
            due = slot
            if len(self._granted) == self._granted.maxlen:
                due = max(due, self._granted[0] + WINDOW)
            if due > now:
                return due - now
            self._granted.append(now)
            return 0.0

    def acquire(self) -> bool:
        """Block until this caller may proceed. False if ``stop()`` was called meanwhile."""
        if self.stop_event.is_set():
            return False
        if self.rate is None:
            return True
        slot = self._reserve()
        while (delay := self._try(slot)) > 0:
            if self.wait(delay) or self.stop_event.is_set():
                return False
        return not self.stop_event.is_set()

    def stop(self) -> None:
        self.stop_event.set()
