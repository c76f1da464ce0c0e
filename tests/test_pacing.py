"""The pacer never grants more than `rate` slots in any one-second window."""

from __future__ import annotations

import threading

from hypothesis import given, settings, strategies as st

from mailer.sending.pacing import RateLimiter
from tests.fixtures.send import RecordingLimiter, max_in_window


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


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
    limiter = RecordingLimiter(200)

    def worker():
        for _ in range(50):
            assert limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grants = sorted(limiter.grants)
    assert len(grants) == 400
    assert max_in_window(grants) <= 200
    # Never ahead of the schedule (400 grants 1/200 s apart). That it keeps up with the rate is
    # test_keeps_up_with_the_rate_under_load's job: a busy machine may run these threads late.
    assert grants[-1] - grants[0] >= 1.9


def test_unlimited_and_stop():
    limiter = RateLimiter(None)
    assert all(limiter.acquire() for _ in range(1000))
    slow = RateLimiter(0.05)  # the next slot is 20 s away: only the stop can end the wait
    assert slow.acquire()
    threading.Timer(0.1, slow.stop).start()
    assert slow.acquire() is False  # not granted at its slot 2 s later: the stop woke it
