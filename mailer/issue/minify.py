"""Small, safe HTML minifier for the rendered email.

Only whitespace and CSS comments are touched, never markup, so it cannot
change what a client shows: outside ``<pre>`` a run of whitespace becomes one
space (or one newline if it held one). Line length is not its concern: every
part of a message is quoted-printable (sending/message.py), whose lines are at
most 76 characters whatever the HTML's lines are, so SMTP's 998-octet limit
holds for any HTML.
"""

from __future__ import annotations

import re

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
    """Collapse whitespace outside <pre>, compact <style> blocks."""
    html = _STYLE.sub(_css, html)
    parts = _PROTECTED.split(html)
    # Odd indexes are the protected <pre>/<textarea> blocks.
    return "".join(p if i % 2 else _collapse(p) for i, p in enumerate(parts))
