"""Small, safe HTML minifier for the rendered email.

Only whitespace and CSS comments are touched, never markup, so it cannot
change what a client shows: outside ``<pre>`` a run of whitespace becomes one
space (or one newline if it held one). Lines are then kept under
``MAX_LINE`` characters by turning an existing space into a newline, because
SMTP forbids lines over 998 octets and some relays break them mid-tag.
"""

from __future__ import annotations

import bisect
import re

MAX_LINE = 900
_PROTECTED = re.compile(r"(<pre\b.*?</pre>|<textarea\b.*?</textarea>)", re.S | re.I)
_STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.S | re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_WS_NL = re.compile(r"[ \t\r\f\v]*\n\s*")
_WS = re.compile(r"[ \t\r\f\v]{2,}|[\t\r\f\v]")


def _css(m: re.Match) -> str:
    css = _CSS_COMMENT.sub("", m.group(2))
    css = re.sub(r"\s*([{};:,>])\s*", r"\1", css)
    css = re.sub(r"\s+", " ", css).replace(";}", "}")
    return m.group(1) + css.strip() + m.group(3)


def _collapse(chunk: str) -> str:
    return _WS.sub(" ", _WS_NL.sub("\n", chunk))


def minify(html: str) -> str:
    """Collapse whitespace outside <pre>, compact <style> blocks, cap line length."""
    html = _STYLE.sub(_css, html)
    parts = _PROTECTED.split(html)
    # Odd indexes are the protected <pre>/<textarea> blocks.
    html = "".join(p if i % 2 else _collapse(p) for i, p in enumerate(parts))
    return break_long_lines(html)


# A tag as the character scan of the old pass saw it: quoted values may hold
# ">" and spaces; an unclosed quote or tag runs to the end of the line.
_TAG = re.compile(r"""<(?:[^>"']|"[^"]*(?:"|\Z)|'[^']*(?:'|\Z))*>?""")
_QUOTED = re.compile(r""""[^"]*(?:"|\Z)|'[^']*(?:'|\Z)""")
_SPACE = re.compile(" ")


def _mask_quotes(tag: re.Match) -> str:
    return _QUOTED.sub(lambda q: "x" * len(q.group()), tag.group())


def _break_points(line: str) -> list[int]:
    """Indexes of spaces where a newline means the same as the space.

    Not inside a quoted attribute value, and not inside <pre> (callers only
    pass lines whose <pre> content is short, since code lines are short).
    Regexes do the scan: quoted values are masked, then every space left counts.
    """
    masked = _TAG.sub(_mask_quotes, line)
    return [m.start() for m in _SPACE.finditer(masked)]


def _pre_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _PROTECTED.finditer(text)]


def break_long_lines(html: str, limit: int = MAX_LINE) -> str:
    lines = html.split("\n")
    if all(len(line) <= limit for line in lines):
        return html
    pre = _pre_spans(html)
    starts = [a for a, _ in pre]
    out = []
    offset = 0
    for line in lines:
        if len(line) > limit:
            line = _break_line(line, limit, offset, pre, starts)
        out.append(line)
        offset += len(line) + 1
    return "\n".join(out)


def _inside_pre(pos: int, pre: list[tuple[int, int]], starts: list[int]) -> bool:
    i = bisect.bisect_right(starts, pos) - 1  # the last span starting at or before pos
    return i >= 0 and pos < pre[i][1]


def _break_line(line: str, limit: int, offset: int, pre: list[tuple[int, int]], starts: list[int]) -> str:
    points = [p for p in _break_points(line) if not _inside_pre(offset + p, pre, starts)]
    chars = list(line)
    start = 0
    last = None
    for p in points:
        if p - start > limit and last is not None:
            chars[last] = "\n"
            start = last + 1
        last = p
    if len(line) - start > limit and last is not None and last > start:
        chars[last] = "\n"
    return "".join(chars)
