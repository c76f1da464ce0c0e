"""The reputation guard: pause a send whose hard-bounce or complaint rate passes its limit.

SES puts an account under review at a 5% bounce or 0.1% complaint rate and
pauses it at 10% / 0.5%; one bad list import can get there within a single
send. The rates are over the messages this run sent (``since`` = when the run
started), so resuming after fixing the list starts a fresh count, and only
once ``[guard] min_sent`` messages were sent (a few early bounces are noise).
Feedback reaches the database through the webhook or the queue poller; the
guard only reads it (``Store.campaign_feedback``).
"""

from __future__ import annotations

import datetime as dt
import time

from mailer.config import Guard as GuardSettings
from mailer.errors import SendingPaused
from mailer.store import Store

CHECK_EVERY = 0.5  # seconds between two reads of the rates, at least ...
COST_SHARE = 0.1  # ... and long enough that reading them takes at most a tenth of the send loop's time


class Guard:
    def __init__(self, store: Store, campaign_id: int, limits: GuardSettings, since: dt.datetime):
        self.store, self.campaign_id, self.limits, self.since = store, campaign_id, limits, since
        self._next = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def verdict(self) -> str | None:
        """Why the send must pause now (None: carry on)."""
        started = time.monotonic()
        counts = self.store.campaign_feedback(self.campaign_id, since=self.since)
        # bench/guard.py: ~0.1 s at 100k recipients; the next look waits ten times what this one cost.
        took = time.monotonic() - started
        self._next = started + took + max(CHECK_EVERY, took / COST_SHARE)
        if counts.sent < max(1, self.limits.min_sent):
            return None
        for what, n, limit, key in (
                ("hard-bounce", counts.hard_bounces, self.limits.max_bounce_rate, "max_bounce_rate"),
                ("complaint", counts.complaints, self.limits.max_complaint_rate, "max_complaint_rate")):
            if counts.rate(n) > limit:
                return (f"{what} rate {counts.rate(n):.1%} ({n} of {counts.sent} sent) is above "
                        f"guard.{key} {limit:.1%}")
        return None


def account_gate(transport) -> str | None:
    """Read the provider's account state before a send: raise SendingPaused for an account that
    cannot send, return a warning for one under review (None: fine, or not reported)."""
    from mailer.aws.sesadmin import account_verdict

    account = transport.account()
    if not account:
        return None
    refusal, warning = account_verdict(account)
    if refusal:
        raise SendingPaused(refusal, code="AccountSendingPaused")
    return warning
