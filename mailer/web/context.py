"""What every request handler shares: settings, the store, the transport, tokens, pages.

The store and the transport are opened on first use (not at import), so a
Lambda cold start or `serve` stays cheap and a database that is down shows up
as a 503 page instead of a crash at start-up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from typing import Any, Callable

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect

from mailer.config import Settings
from mailer.errors import StoreError, TokenError
from mailer.aws.sns import MAX_MESSAGE_AGE, SnsVerifier
from mailer.tokens import Signer, TokenData
from mailer.web.pages import Pages

log = logging.getLogger("twir_mail.web")
CONFIRM_MAX_AGE = 7 * 24 * 3600  # confirmation links expire after a week
# SNS retries a delivery for hours (at most days): a MessageId older than this will not come back,
# so its de-duplication row can go. A replayed copy of it is refused as older than
# MAX_MESSAGE_AGE; the day between them covers clock skew.
SNS_ID_KEEP = MAX_MESSAGE_AGE + dt.timedelta(days=1)
# Concurrent database calls in threads per process (see run_db; the one-click write runs on
# the event loop instead, see loop_writer). PostgreSQL: at most the engine's
# pool_size (mailer/store/engine.py), so no call waits for, or churns, an overflow connection;
# commits wait on the WAL flush, and more of them in flight share one flush.
DB_THREADS = {"sqlite": 2, "postgresql": 10}


# A body has this long to arrive (ours are at most 256 KB). uvicorn sets no limit: a client
# sending a byte now and then would hold its connection and a coroutine as long as it liked.
BODY_SECONDS = 30.0


class SlowBody(Exception):
    """The body did not arrive within BODY_SECONDS (answered 408)."""


async def read_body(request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (the rest is not read).
    Raises SlowBody if it takes longer than BODY_SECONDS."""
    chunks, size = [], 0
    with anyio.move_on_after(BODY_SECONDS):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    raise SlowBody()


async def drain(request, limit: int = 64 * 1024) -> None:
    """Read and drop a body we need nothing from, without buffering a huge one.

    A client that hangs up meanwhile is no reason to stop: the signed token in the path is
    the request (an unsubscribe must not be lost to a dropped connection)."""
    seen = 0
    try:
        with anyio.move_on_after(BODY_SECONDS):  # a slow one too: see read_body
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > limit:
                    break
    except ClientDisconnect:
        pass


class Services:
    def __init__(self, settings: Settings, *, store: Any = None, transport: Any = None,
                 sns_fetcher: Callable[[str], bytes] | None = None):
        self.settings = settings
        self.signer = Signer.from_settings(settings)
        self.pages = Pages(settings)
        self.verifier = SnsVerifier(settings, fetcher=sns_fetcher)
        self.fetch = self.verifier.fetcher  # certificates (subscriptions are confirmed through the SNS API)
        self.base_url = settings.web.base_url.rstrip("/")
        self._store = store
        self._owns_store = store is None
        self._transport = transport
        self._owns_transport = transport is None
        self._lock = threading.Lock()
        self._lists: dict[int, tuple[str | None, str] | None] = {}
        self._db_limiter: anyio.CapacityLimiter | None = None
        self._writer: Any = None  # the store's LoopWriter, and the event loop it belongs to
        self._writer_loop: asyncio.AbstractEventLoop | None = None
        self._pruned_at: float | None = None

    # -- lazily opened resources ------------------------------------------------
    def _lazy(self, attr: str, open_it):
        """The resource in ``attr``, opened once on first use (double-checked: requests run in threads)."""
        if getattr(self, attr) is None:
            with self._lock:
                if getattr(self, attr) is None:
                    setattr(self, attr, open_it(self.settings))
        return getattr(self, attr)

    @property
    def store(self):
        from mailer.store import open_store  # imported on first use: a cold start that needs no database skips it

        return self._lazy("_store", open_store)

    @property
    def transport(self):
        from mailer.sending.transport import open_transport

        return self._lazy("_transport", open_transport)

    async def loop_writer(self):
        """The one-click write without a thread hop (mailer/store/loopwriter.py), one per event loop."""
        loop = asyncio.get_running_loop()
        if self._writer_loop is not loop:  # the first call, or the app now runs in another loop
            from mailer.store.loopwriter import LoopWriter

            old, self._writer, self._writer_loop = self._writer, LoopWriter(self.store), loop
            if old is not None:
                await old.close()
        return self._writer

    async def close_loop_writer(self) -> None:
        writer, self._writer, self._writer_loop = self._writer, None, None
        if writer is not None:
            await writer.close()

    def close(self) -> None:
        if self._owns_transport and self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None

    async def run_db(self, fn, *args):
        """Run short database-only work in a thread, a few at a time.

        Dozens of threads fighting over the GIL and the database (SQLite takes
        one writer at a time and its busy handler sleeps in steps of up to
        100 ms) make the slowest requests far slower; a small limiter keeps
        p99 close to the median without costing throughput.
        """
        if self._db_limiter is None:
            self._db_limiter = anyio.CapacityLimiter(DB_THREADS.get(self.store.dialect, 4))
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._db_limiter)

    def prune_if_due(self, every: float = 3600.0) -> None:
        """Delete aged rate-limit events and SNS MessageIds, at most once an hour per process
        (called from request threads; cheap when not due)."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < every:
            return
        self._pruned_at = now
        web = self.settings.web
        longest = dt.timedelta(days=max(web.confirmation_window_days, 1), hours=1)
        try:
            self.store.prune_web_tables(rate_older_than=longest, sns_older_than=SNS_ID_KEEP)
        except StoreError as exc:
            log.warning("pruning old rate-limit and SNS rows failed: %s", exc)

    def confirm_sns_subscription(self, topic_arn: str, token: str) -> None:
        """SNS ConfirmSubscription with AuthenticateOnUnsubscribe (as django-anymail does), not a GET
        of SubscribeURL: then only a signed AWS request can detach the webhook, not whoever holds
        the unsubscribe link found in every notification. Raises AwsError."""
        from mailer.aws.client import aws_errors, client

        region = topic_arn.split(":")[3] if topic_arn.count(":") >= 5 else None  # the topic's own region
        sns = client(self.settings, "sns", region=region)
        with aws_errors("SNS ConfirmSubscription"):
            sns.confirm_subscription(TopicArn=topic_arn, Token=token, AuthenticateOnUnsubscribe="true")

    # -- helpers ------------------------------------------------------------------
    def check_token(self, token: str, purpose: int, max_age: float | None = None) -> TokenData | None:
        # Signer.verify accepts only the exact spelling it issues (no padding or spare-bit variants).
        try:
            return self.signer.verify(token, purpose, max_age=max_age)
        except TokenError:
            return None

    def _list(self, list_id: int) -> tuple[str | None, str] | None:
        """(title, name) of a list, cached (lists are set up once, not edited while serving)."""
        if list_id not in self._lists:
            self._lists[list_id] = self.store.list_title(list_id)
        return self._lists[list_id]

    async def load_list(self, list_id: int) -> None:
        """Cache a list's title and name, read in a thread the first time: the event loop never
        waits for a query (list_title and list_name then answer from the cache)."""
        if list_id not in self._lists:
            await self.run_db(self._list, list_id)

    def list_title(self, list_id: int) -> str:
        """The list's title for pages (the newsletter's name if untitled or unknown)."""
        found, name = self._list(list_id), self.settings.newsletter.name
        if found is not None and found[0]:
            return found[0]
        if found is not None and found[1] not in ("main", ""):
            return f"{name} ({found[1]})"
        return name

    def list_name(self, list_id: int) -> str | None:
        """The list's name (None: no such list, e.g. the 0 of a test send's token)."""
        found = self._list(list_id)
        return found[1] if found else None

    def invalid_link(self):
        # Deliberately the same page for forged, truncated, expired or wrong-purpose tokens.
        return self.pages.message(
            "This link is not valid",
            "The link may be incomplete or out of date. Please use the most recent link from our emails.",
            status=400,
        )

    def unavailable(self):
        return self.pages.message("Temporarily unavailable", "Please try again in a few minutes.", status=503)
