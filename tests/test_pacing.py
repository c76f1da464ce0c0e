"""The pacer never grants more than `rate` slots in any one-second window."""

from __future__ import annotations

import bisect
import threading
import time

from hypothesis import given, settings, strategies as st

from mailer.sending.pacing import RateLimiter


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    # Half-open windows [t, t+1) starting at each grant are the worst case.
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(min_value=0.3, max_value=500),
       gaps=st.lists(st.floats(min_value=0, max_value=2.5), min_size=1, max_size=400))
def test_never_more_than_rate_in_any_second(rate, gaps):
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, wait=clock.wait)
    grants = []
    for gap in gaps:  # callers arrive irregularly: idle gaps, bursts
        clock.now += gap
        assert limiter.acquire()
        grants.append(clock.now)
    assert max_in_window(grants) <= max(1, int(rate))
    assert grants == sorted(grants)


@settings(max_examples=50, deadline=None)
@given(rate=st.floats(min_value=1, max_value=300))
def test_keeps_up_with_the_rate_under_load(rate):
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, wait=clock.wait)
    n = int(rate * 5) + 1
    for _ in range(n):
        limiter.acquire()
    # Always-busy callers get (close to) the full rate, never more.
    achieved = (n - 1) / clock.now
    assert achieved <= rate + 1e-9
    assert achieved >= min(rate, max(1, int(rate))) * 0.95


def test_threads_real_clock():
    limiter = RateLimiter(200)
    grants, lock = [], threading.Lock()

    def worker():
        for _ in range(50):
            limiter.acquire()
            with lock:
                grants.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) == 400
    # Thread wake-ups may lag a slot, never run ahead of it: allow a few for scheduler jitter.
    assert max_in_window(grants) <= 202
    assert 1.9 <= grants[-1] - min(grants) <= 4.0


def test_unlimited_and_stop():
    limiter = RateLimiter(None)
    assert all(limiter.acquire() for _ in range(1000))
    slow = RateLimiter(0.5)
    assert slow.acquire()
    threading.Timer(0.1, slow.stop).start()
    started = time.monotonic()
    assert slow.acquire() is False
    assert time.monotonic() - started < 1
