"""A thread-safe pacer: never more than ``rate`` grants in any one-second window.

A plain token bucket with capacity ``rate`` lets up to twice the rate
through in one second (a full bucket plus its refill), which is exactly how
SES throttling gets triggered. Here every grant is a reserved time slot:

* slots are at least ``1/rate`` apart (smooth pacing, keeps the pipe full), and
* a slot is never earlier than one second after the slot ``floor(rate)``
  grants before it (the sliding-window guarantee, also for fractional rates).

Callers reserve a slot under the lock and sleep outside it, so many worker
threads can wait at once. ``clock``/``sleep`` are injectable for tests.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Callable


class RateLimiter:
    def __init__(self, rate: float | None, *, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[float], bool] | None = None):
        """``rate`` None or <= 0 means unlimited. ``wait(seconds)`` returns True if stopped."""
        self.rate = rate if rate and rate > 0 else None
        self.clock = clock
        self.stop_event = threading.Event()
        self.wait = wait or self.stop_event.wait
        self._lock = threading.Lock()
        self._next = -math.inf
        cap = max(1, math.floor(self.rate)) if self.rate else 1
        self._recent: collections.deque[float] = collections.deque(maxlen=cap)

    def reserve(self) -> float:
        """Reserve the next slot; returns its time on ``clock``."""
        with self._lock:
            now = self.clock()
            if self.rate is None:
                return now
            slot = max(now, self._next)
            if len(self._recent) == self._recent.maxlen:
                slot = max(slot, self._recent[0] + 1.0)
            self._recent.append(slot)
            self._next = slot + 1.0 / self.rate
            return slot

    def acquire(self) -> bool:
        """Block until a slot is due. False if ``stop()`` was called meanwhile."""
        if self.stop_event.is_set():
            return False
        slot = self.reserve()
        delay = slot - self.clock()
        if delay > 0 and self.wait(delay):
            return False
        return not self.stop_event.is_set()

    def stop(self) -> None:
        self.stop_event.set()
