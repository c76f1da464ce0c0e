"""Links in an issue's Markdown: finding them (as Python-Markdown does) and judging each target.

``iter_links`` reads the whole scanned body, not line by line: Python-Markdown
accepts a link whose ``(`` ends a line and whose URL starts on the next one,
and a label or URL that wraps across lines. ``url_problems`` is the one place
that decides what is wrong with a target, for every kind of link (inline,
reference definition, raw ``<a href>``) and for the live checker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

from mailer.issue.sanitize import unsafe_url
from mailer.models import Severity

# The label of [label](url): nested [..] allowed, no blank line (a paragraph ends there).
_LINK_OPEN = re.compile(r"(!?)\[((?:[^\[\]\n]|\n(?![ \t]*\n)|\[[^\[\]\n]*\])*)\]\(")
# "[Oxidize Conference] (https://...)": Markdown shows text, not a link.
_SPACED = re.compile(r"(?<![\]!])\[([^\[\]\n]+)\][ \t]+\(((?:[a-zA-Z][a-zA-Z+.-]*:|www\.)[^\s()]*)\)")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
# Something shaped like a scheme before "//" or ":": "hhttps://", "ttps://", "http//", "https:/x".
_SCHEME_LIKE = re.compile(r"^([a-zA-Z]{2,6})(:?/{1,2}|:)")
_WWW_OR_HOST = re.compile(r"^(?:www\.|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?:/|$))", re.I)
# Bounds that keep odd input linear: no real URL is longer, no story prefix wider.
MAX_URL = 4096
MAX_BEFORE = 400
_PLAIN = re.compile(r"[^\s()]+")


@dataclass(frozen=True)
class Link:
    line: int  # 0-based index of the line holding the `[`
    label: str
    url: str  # as written, whitespace inside the URL kept
    is_image: bool
    before: str  # the text of its line before the `[`
    after: str  # the character after the closing `)` (or "")
    url_line: int  # 0-based index of the line where the URL starts

    @property
    def broken(self) -> bool:
        """The URL itself wraps onto another line."""
        return "\n" in self.url.strip()


def iter_links(text: str) -> Iterator[Link]:
    """Every ``[label](url)`` and ``![alt](src)`` of ``text``, in order."""
    starts = _line_starts(text)
    for m in _LINK_OPEN.finditer(text):
        i = m.end()
        i = _skip_space(text, i, newline=True)
        if text.startswith("<", i):
            close = text.find(">", i, i + MAX_URL)
            url, j = (text[i + 1:close], close + 1) if close != -1 else ("", i)
        else:
            j = _url_end(text, i)
            url = text[i:j]
        end = text.find(")", j, j + MAX_URL)
        line = _line_of(starts, m.start())
        yield Link(line=line, label=m.group(2), url=url, is_image=bool(m.group(1)),
                   before=text[max(starts[line], m.start() - MAX_BEFORE):m.start()],
                   after=text[end + 1:end + 2] if end != -1 else "", url_line=_line_of(starts, i))


def _skip_space(text: str, i: int, *, newline: bool) -> int:
    seen_newline = False
    while i < len(text) and text[i] in " \t\n":
        if text[i] == "\n":
            if seen_newline or not newline:
                break
            seen_newline = True
        i += 1
    return i


def _url_end(text: str, i: int) -> int:
    """End of a bare URL: balanced parentheses belong to it, and so does a continuation
    on the next line when the URL was wrapped (no space, then more URL, then `)`)."""
    depth, j = 0, i
    stop = min(len(text), i + MAX_URL)
    while j < stop:
        plain = _PLAIN.match(text, j, stop)
        if plain:
            j = plain.end()  # skip ordinary URL characters in one step
            continue
        ch = text[j]
        if ch == "\n" and j > i and _wrapped_continuation(text, j + 1):
            j += 1
            continue
        if ch.isspace():
            break
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        j += 1
    return j


def _wrapped_continuation(text: str, k: int) -> bool:
    """The next line goes on with URL characters straight up to the link's `)`."""
    m = re.match(r"[^\s()\[\]<>\"]+\)", text[k:k + MAX_URL])
    return m is not None


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer(r"\n", text)]


def _line_of(starts: list[int], offset: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo


def inline_links(line: str):
    """(start, end, label, url, is_image) for the links of one line (kept for callers
    that read line by line)."""
    for link in iter_links(line):
        start = len(link.before)
        end = line.find(")", start + len(link.label) + len(link.url) + 3)
        yield start, (end + 1 if end != -1 else len(line)), link.label, link.url, link.is_image


def spaced_links(line: str) -> list[tuple[str, str]]:
    """(label, url) of each ``[label] (url)`` on a line: a link with a space too many."""
    return [(m.group(1), m.group(2)) for m in _SPACED.finditer(line)]


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (short strings only)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def misspelled_scheme(url: str) -> str | None:
    """The mistyped start of ``url`` (``hhttps://``, ``ttps://``, ``http//``), else None."""
    m = _SCHEME_LIKE.match(url)
    if not m:
        return None
    scheme, sep = m.group(1).lower(), m.group(2)
    if scheme in ("http", "https"):
        return None if sep == "://" else m.group(0)
    if _SCHEME.match(url) and unsafe_url(url) is None:
        return None  # a real scheme: mailto:, irc://, ftp://
    if min(_distance(scheme, "http"), _distance(scheme, "https")) <= 1:
        return m.group(0)
    return None


def url_problems(url: str, *, retired: tuple[str, ...] = ()) -> list[tuple[Severity, str, str]]:
    """(severity, code, message) for what is wrong with one link target."""
    url = url.strip()
    if not url:
        return [(Severity.ERROR, "empty-link", "empty target")]
    joined = "".join(url.split())
    if (bad := misspelled_scheme(joined)) is not None:
        return [(Severity.ERROR, "scheme-typo", f"misspelled scheme {bad!r} in {joined}: the link is dead")]
    if (scheme := unsafe_url(joined)) is not None:
        return [(Severity.ERROR, "unsafe-url", f"{scheme}: URL {_short(joined)} (removed from the email)")]
    if not _SCHEME.match(joined) and not joined.startswith("#"):
        hint = " (add https://)" if _WWW_OR_HOST.match(joined) else ""
        return [(Severity.ERROR, "relative-link",
                 f"link {joined!r} has no scheme: a relative link is dead in an email{hint}")]
    problems = []
    for prefix in retired:
        if joined.startswith(prefix):
            problems.append((Severity.ERROR, "retired-link", f"link to a retired place {_short(joined, 60)} "
                             f"(check.retired_links lists {prefix})"))
            break
    if urlsplit(joined).scheme.lower() == "http":
        problems.append((Severity.WARNING, "http", f"insecure http:// link {joined}"))
    return problems


def _short(text: str, n: int = 50) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
