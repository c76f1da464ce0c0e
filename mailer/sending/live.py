"""`send --when-live`: wait until the issue's web page answers 200, then send.

TWIR's email has gone out before the post was up (readers got a 404 behind
"Read this issue on the web"). The wait polls the page politely: a GET every
``interval`` seconds at first, doubling up to ``MAX_INTERVAL``, never sooner
than a ``Retry-After`` the site asks for, and gives up after ``timeout``.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Callable

from mailer.errors import CampaignError

MAX_INTERVAL = 300.0
USER_AGENT = "twir-mail (waiting for the issue to go live)"


@dataclass
class Attempt:
    status: int | None  # None: no answer (connection error, timeout)
    detail: str
    waited: float  # seconds before the next try (0 on the last)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_duration(text: str) -> float:
    """'2h', '90m', '45s', '1h30m' or plain seconds."""
    import re

    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or not parts:
        raise ValueError(f"{text!r} is not a duration like 2h, 90m, 45s or 1h30m")
    h, m, s = (int(p or 0) for p in parts.groups())
    return float(h * 3600 + m * 60 + s)


def wait_until_live(url: str, *, timeout: float, interval: float,
                    on_attempt: Callable[[Attempt], None] = lambda a: None,
                    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                    get=None) -> int:
    """Poll ``url`` until it answers 200; returns the number of requests. CampaignError on timeout."""
    import httpx

    deadline = clock() + timeout
    delay, tries = max(interval, 0.01), 0
    with httpx.Client(follow_redirects=True, timeout=30, headers={"User-Agent": USER_AGENT}) as http:
        get = get or http.get
        while True:
            tries += 1
            status, detail, asked = _try(get, url)
            if status == 200:
                on_attempt(Attempt(status, detail, 0.0))
                return tries
            wait = max(delay, asked or 0.0)
            left = deadline - clock()
            if wait > left:
                raise CampaignError(f"{url} is not live after {_human(timeout)} (last answer: {detail}); "
                                    "nothing was sent")
            on_attempt(Attempt(status, detail, wait))
            sleep(wait)
            delay = min(MAX_INTERVAL, delay * 2)


def _try(get, url: str) -> tuple[int | None, str, float | None]:
    import httpx

    try:
        response = get(url)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}".rstrip(": "), None
    return response.status_code, f"HTTP {response.status_code}", retry_after(response.headers.get("retry-after"))


def _human(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"
