"""The send loop: worker threads keep the transport busy at the paced rate.

The calling thread is the only one touching the database: it records
outcomes and claims new rows in one transaction per step, never holding
more rows in ``sending`` than there are workers (so a crash leaves at most
``workers`` unknown rows). Workers build each message from the shared
``MessageTemplate`` (only the token and headers differ per recipient), wait
for the pacer and call the transport, retrying throttling/5xx/connection
errors with exponential backoff and jitter.
"""

from __future__ import annotations

import queue
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from mailer.config import Settings
from mailer.errors import PermanentTransportError, RetryableTransportError, SendingPaused, TransportError
from mailer.sending.message import MessageTemplate
from mailer.models import CampaignStatus, DeliveryStatus as DS
from mailer.sending.pacing import RateLimiter
from mailer.store import Store
from mailer.tokens import Signer
from mailer.sending.transport import Transport
from mailer.sending.campaign import ledger
from mailer.sending.campaign.ledger import Campaign, Claim, Outcome

BACKOFF_BASE, BACKOFF_CAP = 0.2, 30.0


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
                 on_progress: Callable[[Progress], None] | None = None):
        self.store, self.campaign, self.template, self.transport = store, campaign, template, transport
        self.settings = settings
        self.workers = workers or settings.send.workers
        self.limiter = RateLimiter(rate)
        self.signer = Signer(settings.secret_key)
        self.on_progress = on_progress or (lambda p: None)
        self.tags = {"campaign": str(campaign.id), "issue": str(campaign.issue_number)}
        self.work: queue.Queue[Claim | None] = queue.Queue()
        self.results: queue.Queue[tuple[Outcome, str | None]] = queue.Queue()
        self.stop = _Stop()

    # -- workers ----------------------------------------------------------
    def _worker(self) -> None:
        while (claim := self.work.get()) is not None:
            try:
                outcome, pause = self._deliver(claim)
            except BaseException as exc:  # a bug: keep the row, pause, never lose it
                outcome, pause = Outcome(claim.delivery_id, DS.QUEUED.value), f"unexpected {exc!r}"
            self.results.put((outcome, pause))

    def _deliver(self, claim: Claim) -> tuple[Outcome, str | None]:
        released = Outcome(claim.delivery_id, DS.QUEUED.value)
        token = self.signer.unsubscribe_token(claim.subscriber_id or 0, self.campaign.list_id or 0)
        try:
            raw = self.template.build(claim.email, token)
        except TransportError as exc:
            return Outcome(claim.delivery_id, DS.FAILED.value, error=exc.message), None
        attempt = 0
        while True:
            if self.stop.reason or not self.limiter.acquire():
                return released, None
            try:
                mid = self.transport.send(raw, sender=self.template.sender, recipient=claim.email, tags=self.tags)
                return Outcome(claim.delivery_id, DS.SENT.value, message_id=mid), None
            except RetryableTransportError as exc:
                attempt += 1
                if attempt > self.settings.send.max_retries:
                    return released, f"{exc.message} (still failing after {attempt} tries)"
                self.results.put((None, None))  # count a retry
                if self.limiter.stop_event.wait(backoff(attempt, exc.retry_after)):
                    return released, None
            except SendingPaused as exc:
                return released, exc.message
            except (PermanentTransportError, TransportError) as exc:
                return Outcome(claim.delivery_id, DS.FAILED.value, error=exc.message), None

    # -- coordinator ------------------------------------------------------
    def run(self) -> Report:
        counts = ledger.counts(self.store, self.campaign.id)
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
        in_flight, exhausted, pending = 0, False, []
        consecutive = 0
        while True:
            block = in_flight > 0 and (in_flight >= self.workers or exhausted or self.stop.reason)
            for outcome, pause in self._drain(block):
                if outcome is None:
                    progress.retries += 1
                    continue
                in_flight -= 1
                pending.append(outcome)
                if pause:
                    self.stop.set(pause)
                    self.limiter.stop()
                if outcome.status == DS.SENT.value:
                    progress.sent += 1
                    consecutive = 0
                elif outcome.status == DS.FAILED.value:
                    progress.failed += 1
                    consecutive += 1
                    if consecutive >= self.settings.send.max_consecutive_failures:
                        self.stop.set(f"{consecutive} failures in a row (last: {outcome.error})")
                        self.limiter.stop()
            want = 0 if (exhausted or self.stop.reason) else self.workers - in_flight
            if pending or want > 0:
                claims, skipped = ledger.step(self.store, self.campaign, pending, want)
                pending = []
                progress.skipped += skipped
                if want > 0 and len(claims) + skipped < want:
                    exhausted = True
                for claim in claims:
                    self.work.put(claim)
                in_flight += len(claims)
                self.on_progress(progress)
            if in_flight == 0 and (exhausted or self.stop.reason):
                return

    def _drain(self, block: bool) -> list:
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
        counts = ledger.counts(self.store, self.campaign.id)
        if self.stop.reason:
            status = CampaignStatus.PAUSED
        elif counts[DS.QUEUED.value] == 0:
            status = CampaignStatus.DONE
        else:  # rows released by another process meanwhile: resumable
            status = CampaignStatus.PAUSED
            self.stop.set("unsent recipients remain")
        ledger.set_status(self.store, self.campaign.id, status, self.stop.reason)
        progress.stopped = time.monotonic()
        self.on_progress(progress)
        return Report(ledger.get(self.store, self.campaign.id), progress, counts, status,
                      self.stop.reason, self.stop.interrupted)
