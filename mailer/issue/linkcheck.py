"""`check --links`: fetch every link and image of an issue once, and report the dead ones.

- Each distinct http(s) URL is asked once: HEAD, then GET when HEAD is refused
  or answered with an error (many servers answer HEAD wrongly).
- Concurrent (asyncio + httpx), with a limit overall and per host, so one
  slow or strict host neither stalls the run nor gets hammered.
- Warnings: 404/410, DNS failures, TLS errors, timeouts, and redirects to a
  different host (a moved page, a parked domain, a login wall).
  Errors: the header logo or the sponsor logo cannot be fetched (every reader
  would see a broken image at the top of the email).
- URLs found good are cached on disk (``check.link_cache``) for
  ``check.link_cache_days``: a second run in the same week only fetches what is
  new or was failing.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from mailer.atomicfile import atomic_open
from mailer.config import Settings
from mailer.issue.lint import link_targets
from mailer.issue.render import sponsor_for
from mailer.models import Finding, Issue, Severity

USER_AGENT = "twir-mail link checker (+https://this-week-in-rust.org/)"
MAX_REDIRECTS = 5
# Codes that mean "gone"; others (403 from bot walls, 429, 5xx) are not a verdict on the link.
DEAD = {404: "not found (404)", 410: "gone (410)"}


@dataclass
class Result:
    """What one URL answered: ``problem`` is None for a good link, else (code, text)."""

    url: str
    status: int | None = None
    final_url: str = ""
    problem: tuple[str, str] | None = None


@dataclass
class Stats:
    urls: int = 0
    cached: int = 0
    requests: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"checked {self.urls} link(s) in {self.seconds:.1f}s: {self.requests} request(s), "
                f"{self.cached} from the cache")


def check_links(issue: Issue, settings: Settings) -> tuple[list[Finding], Stats]:
    """Findings for the issue's dead links and missing logos, and what it took."""
    started = time.monotonic()
    targets = _targets(issue, settings)
    cache = _Cache(settings.link_cache_path, settings.check.link_cache_days)
    stats = Stats(urls=len({url for _, url, _ in targets}))
    todo = sorted({url for _, url, _ in targets if not cache.good(url)})
    stats.cached = stats.urls - len(todo)
    results = asyncio.run(_fetch_all(todo, settings, stats)) if todo else {}
    cache.update(r for r in results.values() if r.problem is None)
    findings = _findings(issue, targets, results)
    stats.seconds = time.monotonic() - started
    return findings, stats


def _targets(issue: Issue, settings: Settings) -> list[tuple[int | None, str, str]]:
    """(file line or None, URL, kind) for every http(s) URL: kind is "link" or which logo."""
    found: list[tuple[int | None, str, str]] = []
    if settings.newsletter.logo_url:
        found.append((None, settings.newsletter.logo_url, "header logo"))
    sponsor = sponsor_for(issue, settings)
    if sponsor and sponsor.logo:
        found.append((issue.header_lines.get("sponsor"), sponsor.logo, "sponsor logo"))
    for line, url in link_targets(issue, settings):
        if urlsplit(url).scheme.lower() in ("http", "https") and urlsplit(url).hostname:
            found.append((line, url.split("#", 1)[0], "link"))
    return found


def _findings(issue: Issue, targets, results: dict[str, Result]) -> list[Finding]:
    findings, reported = [], set()
    for line, url, kind in targets:
        result = results.get(url)
        if result is None or result.problem is None or (url, kind) in reported:
            continue  # good, cached as good, or already reported once
        reported.add((url, kind))
        code, text = result.problem
        if kind == "link":
            findings.append(Finding(str(issue.path), line, Severity.WARNING, f"{url}: {text}", code))
        elif code != "redirect-host":  # a logo served from a CDN is fine
            findings.append(Finding(str(issue.path), line, Severity.ERROR,
                                    f"{kind} {url} cannot be fetched: {text}", "logo-missing"))
    return findings


async def _fetch_all(urls: list[str], settings: Settings, stats: Stats) -> dict[str, Result]:
    limits = settings.check
    overall = asyncio.Semaphore(limits.link_concurrency)
    per_host: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(limits.link_per_host))
    timeout = httpx.Timeout(limits.link_timeout)
    pool = httpx.Limits(max_connections=limits.link_concurrency, max_keepalive_connections=limits.link_concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=pool, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                                 headers={"User-Agent": USER_AGENT}) as client:
        async def one(url: str) -> Result:
            async with overall, per_host[urlsplit(url).netloc.lower()]:
                return await _fetch(client, url, stats)

        results = await asyncio.gather(*(one(url) for url in urls))
    return {r.url: r for r in results}


async def _fetch(client: httpx.AsyncClient, url: str, stats: Stats) -> Result:
    """HEAD, then GET if HEAD did not give a good answer."""
    result = Result(url)
    for method in ("HEAD", "GET"):
        try:
            stats.requests += 1
            async with client.stream(method, url) as response:
                result.status, result.final_url = response.status_code, str(response.url)
                stats.requests += len(response.history)
        except httpx.TooManyRedirects:
            result.problem = ("redirect-loop", f"more than {MAX_REDIRECTS} redirects")
            return result
        except httpx.TimeoutException:
            result.problem = ("timeout", f"no answer within {client.timeout.read:g}s")
            return result  # a GET would wait just as long
        except httpx.TransportError as exc:
            result.problem = _network_problem(exc)
            return result
        if result.status < 400 or method == "GET":
            break
    result.problem = _verdict(result)
    return result


def _verdict(result: Result) -> tuple[str, str] | None:
    if result.status in DEAD:
        return "dead-link", DEAD[result.status]
    start, end = urlsplit(result.url).hostname or "", urlsplit(result.final_url).hostname or ""
    if _site(start) != _site(end):
        return "redirect-host", f"redirects to another host ({result.final_url})"
    return None


def _site(host: str) -> str:
    return host.lower().removeprefix("www.")


def _network_problem(exc: Exception) -> tuple[str, str]:
    """DNS and TLS failures by their cause; anything else is a connection failure."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "dns", "host name does not resolve (DNS)"
        if isinstance(cause, ssl.SSLError):
            return "tls", f"TLS error: {getattr(cause, 'verify_message', None) or cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "dns", "host name does not resolve (DNS)"
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return "tls", f"TLS error: {text}"
    return "unreachable", f"cannot connect: {text or type(exc).__name__}"


class _Cache:
    """URL -> time it was last found good, in a small JSON file. Unreadable means empty."""

    def __init__(self, path: Path, days: float):
        self.path = path
        self.max_age = days * 86400
        self.now = time.time()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self.entries = {u: float(t) for u, t in data.items() if self.now - float(t) < self.max_age}
        except (OSError, ValueError, TypeError, AttributeError):
            self.entries = {}

    def good(self, url: str) -> bool:
        return url in self.entries

    def update(self, results) -> None:
        for r in results:
            self.entries[r.url] = self.now
        if self.max_age <= 0:
            return
        try:
            with atomic_open(self.path, "w", encoding="utf-8") as fh:  # two `check --links` at once: no clash
                json.dump(self.entries, fh, indent=0, sort_keys=True)
        except OSError:
            pass  # a cache that cannot be written only costs time
