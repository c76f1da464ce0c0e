"""Small, safe HTML minifier for the rendered email.

Only whitespace and CSS comments are touched, never markup, so it cannot
change what a client shows: outside ``<pre>`` a run of whitespace becomes one
space (or one newline if it held one). Line length is not its concern: every
part of a message is quoted-printable (sending/message.py), whose lines are at
most 76 characters whatever the HTML's lines are, so SMTP's 998-octet limit
holds for any HTML.
"""

from __future__ import annotations

import functools
import re

_PROTECTED = re.compile(r"(<pre\b.*?</pre>|<textarea\b.*?</textarea>)", re.S | re.I)
_STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.S | re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# Each pattern starts with a single character or class, which lets `re` skip ahead
# to candidates instead of trying a match at every position (4x faster than
# "[ \t\r\f\v]*\n\s*" then "[ \t\r\f\v]{2,}|[\t\r\f\v]", which it replaces).
_NL_RUN = re.compile(r"\n\s*")  # a newline and the whitespace after it
_HSPACE_RUN = re.compile(r"[ \t\r\f\v](?:[ \t\r\f\v]+|(?<=[\t\r\f\v]))")  # 2+, or one non-space


@functools.lru_cache(maxsize=32)
def _css_text(css: str) -> str:
    # The layout's style blocks are the same in every issue: compact each once.
    css = _CSS_COMMENT.sub("", css)
    css = re.sub(r"\s*([{};:,>])\s*", r"\1", css)
    return re.sub(r"\s+", " ", css).replace(";}", "}").strip()


def _css(m: re.Match) -> str:
    return m.group(1) + _css_text(m.group(2)) + m.group(3)


def _collapse(chunk: str) -> str:
    """A whitespace run becomes one newline if it holds one, else one space (a lone space stays)."""
    # After the first pass a newline is followed by no whitespace, and after the
    # second every other run is one space, so the third drops what preceded a newline.
    return _HSPACE_RUN.sub(" ", _NL_RUN.sub("\n", chunk)).replace(" \n", "\n")


def minify(html: str) -> str:
    """Collapse whitespace outside <pre>, compact <style> blocks."""
    html = _STYLE.sub(_css, html)
    parts = _PROTECTED.split(html)
    # Odd indexes are the protected <pre>/<textarea> blocks.
    return "".join(p if i % 2 else _collapse(p) for i, p in enumerate(parts))
