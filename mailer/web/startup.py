"""What every way of serving the web app checks before it starts, and its access log.

``serve`` and the AWS Lambda entry both call :func:`check_can_serve`: with the
development secret (public in the source) anyone could forge unsubscribe and
confirmation tokens, so the app runs on it only where nobody else can reach it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from urllib.parse import quote, urlsplit

from mailer.config import Settings
from mailer.errors import ConfigError

access_log = logging.getLogger("twir_mail.access")
# Path segments that are bearer secrets: the token itself unsubscribes or confirms.
# Mail clients and readers mangle links (upper case, doubled slashes, a prefix pasted in front),
# and such a path still carries a working token: match the route name anywhere, in any case,
# and any segment holding a token's shape (base64url "." base64url) whatever route it is under.
# Fixed-width on purpose: with {16,} on both sides a long run without a dot made the search
# quadratic (a 60 KB path took 3.6 s, on the event loop).
_TOKEN_PATH = re.compile(r"/(unsubscribe|confirm)/+[^/]+", re.IGNORECASE)
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{16}")
MAX_LOGGED_PATH = 200  # a real path is far shorter; a 60 KB one must not make a 60 KB log line


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback IPs only (not 0.0.0.0 or link-local: others reach those)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_can_serve(settings: Settings, bind_host: str | None = None) -> None:
    """Refuse (ConfigError) to serve with the development secret unless only this machine can reach it."""
    if settings.has_real_secret:
        return
    base = settings.web.base_url.rstrip("/")
    where = None
    if not is_loopback(urlsplit(base).hostname or ""):
        where = f"for {base}"
    elif bind_host is not None and not is_loopback(bind_host):
        where = f"on {bind_host}"
    if where:
        raise ConfigError(f"refusing to serve {where} with the development secret: set TWIR_MAIL_SECRET_KEY "
                          "(at least 16 characters); anyone could forge its unsubscribe and confirmation links",
                          setting="TWIR_MAIL_SECRET_KEY")


def safe_path(path: str) -> str:
    """The request path for a log line: bearer tokens replaced (logs must not hold working links),
    unprintable characters and spaces %-encoded and the length capped.

    The path arrives %-decoded, so a client's ``%0A`` is a newline that would start a log line
    of its own choosing."""
    path = _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/<token>", path)
    if _TOKEN_SHAPE.search(path):
        path = "/".join("<token>" if _TOKEN_SHAPE.search(part) else part for part in path.split("/"))
    if not path.isprintable() or " " in path:  # a space would let "/x 200 0ms" pose as the status
        path = "".join(c if c.isprintable() and c != " " else quote(c) for c in path)
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."


class AccessLog:
    """ASGI middleware: one line per request (method, path without tokens or query, status, ms).

    No client address and no query string: neither is needed to run the service, and
    both can identify a reader.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            access_log.info("%s %s %d %.0fms", scope.get("method", "?"), safe_path(scope.get("path", "")),
                            status[0], (time.perf_counter() - started) * 1000)
