"""The send loop: worker threads keep the transport busy at the paced rate.

The calling thread is the only one touching the database: it records
outcomes and claims new rows in one transaction per step. Steps are batched
so several senders sharing a campaign do not load the database for nothing
(``batch_size``): rows are claimed a batch ahead of the workers, each still
claimed before its transport call, and handed over at most ``workers`` at a
time (a pause or the failure limit stops as soon as before; claimed rows never
handed over go straight back to the queue). Outcomes are recorded once a batch
has finished, ``FLUSH_S`` after the oldest, or with the next claim, each still
after its call. A crash (kill -9) leaves at most ``workers + batch`` rows
``sending`` ("unknown"). Workers build each message from the shared
``MessageTemplate`` (only the token and headers differ per recipient), wait
for the pacer and call the transport, retrying throttling/5xx/connection
errors with exponential backoff and jitter.
"""

from __future__ import annotations

import queue
from collections import deque
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from mailer.config import Settings
from mailer.errors import PermanentTransportError, RetryableTransportError, SendingPaused, TransportError
from mailer.models import Campaign, CampaignStatus, Claim, DeliveryStatus as DS, Outcome
from mailer.sending.campaign.guard import Guard
from mailer.sending.message import MessageTemplate
from mailer.sending.pacing import RateLimiter
from mailer.sending.transport import Transport
from mailer.store import Store
from mailer.tokens import Signer

BACKOFF_BASE, BACKOFF_CAP = 0.2, 30.0
FLUSH_S = 1.0  # longest an outcome waits to be recorded
AHEAD_S, BATCH_MAX = 0.5, 64  # claim about half a second of sending ahead, at most 64 rows


def batch_size(workers: int, rate: float | None) -> int:
    """Rows claimed ahead of the workers and outcomes recorded per transaction.

    Tied to the rate so the windows it opens stay short in time: a recipient who
    unsubscribes is skipped unless already claimed (about AHEAD_S before the send),
    and a crash leaves at most ``workers + batch`` rows ``sending``.
    """
    if not rate:
        return BATCH_MAX
    return max(workers, min(BATCH_MAX, round(rate * AHEAD_S)))


@dataclass
class Progress:
    total: int
    done_before: int  # rows already finished when this run started
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    stopped: float | None = None  # set when the run ends: the figures stop moving

    @property
    def finished(self) -> int:
        return self.done_before + self.sent + self.failed + self.skipped

    @property
    def elapsed(self) -> float:
        # Frozen at the end, so the progress bar's last rate and the summary printed after
        # it (a moment later) are the same figure.
        return (self.stopped or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class Report:
    campaign: Campaign
    progress: Progress
    counts: dict[str, int]
    status: CampaignStatus
    reason: str | None = None  # why paused
    interrupted: bool = False

    @property
    def unknown(self) -> int:
        return self.counts.get(DS.SENDING.value, 0)


@dataclass(frozen=True)
class Finished:
    """A worker is done with one claimed row: its outcome, and why sending must stop (if it must)."""

    outcome: Outcome
    pause: str | None = None


@dataclass(frozen=True)
class Retrying:
    """A worker is about to send again after a retryable failure: counted, no row finished."""


RETRYING = Retrying()
Result = Finished | Retrying  # what workers put on the results queue


class _Stop:
    """Why the run is winding down (first reason wins)."""

    def __init__(self):
        self.reason: str | None = None
        self.interrupted = False
        self.lock = threading.Lock()

    def set(self, reason: str, interrupted: bool = False) -> None:
        with self.lock:
            if self.reason is None:
                self.reason, self.interrupted = reason, interrupted


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (half to full of the capped exponential)."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return max(retry_after or 0.0, delay * random.uniform(0.5, 1.0))


class Sender:
    def __init__(self, store: Store, campaign: Campaign, template: MessageTemplate, transport: Transport,
                 settings: Settings, *, rate: float | None, workers: int | None = None,
                 on_progress: Callable[[Progress], None] | None = None, guard: Guard | None = None):
        self.store, self.campaign, self.template, self.transport = store, campaign, template, transport
        self.settings = settings
        self.workers = workers or settings.send.workers
        self.batch = batch_size(self.workers, rate)
        self.limiter = RateLimiter(rate)
        self.signer = Signer.from_settings(settings)
        self.on_progress = on_progress or (lambda p: None)
        self.tags = {"campaign": str(campaign.id), "issue": str(campaign.issue_number)}
        self.work: queue.Queue[Claim | None] = queue.Queue()
        self.results: queue.Queue[Result] = queue.Queue()
        self.stop = _Stop()
        self.guard = guard

    # -- workers ----------------------------------------------------------
    def _worker(self) -> None:
        while (claim := self.work.get()) is not None:
            try:
                result = self._deliver(claim)
            except BaseException as exc:  # a bug: keep the row, pause, never lose it
                result = Finished(Outcome(claim.delivery_id, DS.QUEUED), f"unexpected {exc!r}")
            self.results.put(result)

    def _deliver(self, claim: Claim) -> Finished:
        released = Finished(Outcome(claim.delivery_id, DS.QUEUED))
        token = self.signer.unsubscribe_token(claim.subscriber_id or 0, self.campaign.list_id or 0)
        try:
            raw = self.template.build(claim.email, token)
        except TransportError as exc:
            return Finished(Outcome(claim.delivery_id, DS.FAILED, error=exc.message))
        attempt = 0
        while True:
            if self.stop.reason or not self.limiter.acquire():
                return released
            try:
                mid = self.transport.send(raw, sender=self.template.sender, recipient=claim.email, tags=self.tags)
                return Finished(Outcome(claim.delivery_id, DS.SENT, message_id=mid))
            except RetryableTransportError as exc:
                attempt += 1
                if attempt > self.settings.send.max_retries:
                    return Finished(released.outcome, f"{exc.message} (still failing after {attempt} tries)")
                self.results.put(RETRYING)
                if self.limiter.stop_event.wait(backoff(attempt, exc.retry_after)):
                    return released
            except SendingPaused as exc:
                return Finished(released.outcome, exc.message)
            except (PermanentTransportError, TransportError) as exc:
                return Finished(Outcome(claim.delivery_id, DS.FAILED, error=exc.message))

    # -- coordinator ------------------------------------------------------
    def run(self) -> Report:
        counts = self.store.delivery_counts(self.campaign.id)
        total = sum(counts.values())
        progress = Progress(total=total, done_before=total - counts[DS.QUEUED.value] - counts[DS.SENDING.value])
        threads = [threading.Thread(target=self._worker, name=f"send-{i}", daemon=True)
                   for i in range(self.workers)]
        for t in threads:
            t.start()
        old_handler = self._trap_sigint()
        try:
            self._loop(progress)
        except BaseException:
            # The ledger is unreachable: send nothing more that could not be recorded.
            self.stop.set("aborted")
            self.limiter.stop()
            raise
        finally:
            for _ in threads:
                self.work.put(None)
            for t in threads:
                t.join()
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        return self._finish(progress)

    def _trap_sigint(self):
        """First Ctrl-C: stop claiming, let in-flight sends finish. Second: default behaviour."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            self.stop.set("interrupted (Ctrl-C)", interrupted=True)
            self.limiter.stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

        return signal.signal(signal.SIGINT, handler)

    def _loop(self, progress: Progress) -> None:
        # handed: given to the workers, not back yet (at most `workers`, so a pause or the
        # failure limit stops as soon as before); backlog: claimed, not handed over yet.
        handed, backlog, exhausted, pending = 0, deque(), False, []
        consecutive, oldest = 0, 0.0
        while True:
            block = handed > 0 and (handed >= self.workers or exhausted or self.stop.reason)
            drained = self._drain(block)
            for result in drained:
                if isinstance(result, Retrying):
                    progress.retries += 1
                    continue
                outcome = result.outcome
                handed -= 1
                if not pending:
                    oldest = time.monotonic()
                pending.append(outcome)
                if result.pause:
                    self.stop.set(result.pause)
                    self.limiter.stop()
                if outcome.status == DS.SENT:
                    progress.sent += 1
                    consecutive = 0
                elif outcome.status == DS.FAILED:
                    progress.failed += 1
                    consecutive += 1
                    if consecutive >= self.settings.send.max_consecutive_failures:
                        self.stop.set(f"{consecutive} failures in a row (last: {outcome.error})")
                        self.limiter.stop()
            self._watch_rates()
            if self.stop.reason and backlog:  # claimed but never handed over: back to the queue
                pending += [Outcome(c.delivery_id, DS.QUEUED) for c in backlog]
                backlog.clear()
            # Claim a batch ahead when the backlog runs low; record a batch (or an old one) at once.
            claim = not (exhausted or self.stop.reason) and len(backlog) < self.workers
            want = self.workers + self.batch - handed - len(backlog) if claim else 0
            ending = handed == 0 and not backlog and (exhausted or self.stop.reason)
            flush = bool(pending) and (len(pending) >= self.batch or ending or bool(self.stop.reason)
                                       or time.monotonic() - oldest >= FLUSH_S)
            if want > 0 or flush:
                claims, skipped = self.store.ledger_step(self.campaign, pending, want)
                pending = []
                progress.skipped += skipped
                if want > 0 and len(claims) + skipped < want:
                    exhausted = True
                backlog.extend(claims)
            while backlog and handed < self.workers:
                self.work.put(backlog.popleft())
                handed += 1
            if drained or want > 0 or flush:
                self.on_progress(progress)
            if handed == 0 and not backlog and not pending and (exhausted or self.stop.reason):
                return

    def _watch_rates(self) -> None:
        """The reputation guard's verdict, now and then: a pause like a paused SES account."""
        if self.guard is None or self.stop.reason or not self.guard.due():
            return
        reason = self.guard.verdict()
        if reason:
            self.stop.set(reason)
            self.limiter.stop()

    def _drain(self, block: bool) -> list[Result]:
        items = []
        if block:
            try:
                items.append(self.results.get(timeout=0.2))
            except queue.Empty:
                return items
        while True:
            try:
                items.append(self.results.get_nowait())
            except queue.Empty:
                return items

    def _finish(self, progress: Progress) -> Report:
        counts = self.store.delivery_counts(self.campaign.id)
        if self.stop.reason:
            status = CampaignStatus.PAUSED
        elif counts[DS.QUEUED.value] == 0:
            status = CampaignStatus.DONE
        else:  # rows released by another process meanwhile: resumable
            status = CampaignStatus.PAUSED
            self.stop.set("unsent recipients remain")
        self.store.set_campaign_status(self.campaign.id, status, self.stop.reason)
        progress.stopped = time.monotonic()
        self.on_progress(progress)
        return Report(self.store.campaign(self.campaign.id), progress, counts, status,
                      self.stop.reason, self.stop.interrupted)
