"""Markdown body -> the HTML fragment that goes inside the email.

Python-Markdown with the extensions TWIR's Pelican site uses, so the email
says what the web page says. Then clean-up for email:
- HTML comments go (drafts are full of them);
- raw "HTML" that is really Rust syntax (``Vec<T>``, ``only-<platforms>``)
  is escaped so it shows as text instead of vanishing as an unknown tag;
- heading ids go (no anchors in email), every image gets an ``alt``.
"""

from __future__ import annotations

import importlib
import re
import threading

import markdown

# The site's set is "extra", "toc", "meta", "codehilite" (SITE_EXTENSIONS, what
# bench/render.py measures against). The email leaves out "toc": it only adds
# heading ids, which email strips anyway, and costs ~7% of the conversion.
SITE_EXTENSIONS = ["extra", "toc", "meta", "codehilite"]
EXTENSIONS = [e for e in SITE_EXTENSIONS if e != "toc"]
EXTENSION_CONFIGS = {
    # Inline colours: email clients drop <style>-based Pygments classes.
    # A dark style keeps its own background, so it reads the same in dark mode.
    "codehilite": {"noclasses": True, "pygments_style": "monokai", "guess_lang": False},
    "toc": {"anchorlink": False, "permalink": False},
}

# Elements a TWIR author may write as raw HTML. Anything else that looks like a
# tag (``<T>``, ``<Vec<T>``, ``<impl Log>``) is text and gets escaped.
HTML_TAGS = frozenset("""
a abbr b bdi bdo blockquote br caption center cite code col colgroup dd del details dfn div dl dt em
figcaption figure font h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strike
strong sub summary sup table tbody td tfoot th thead time tr tt u ul var wbr
""".split())
# A real tag: known lower-case name, then attribute syntax only (no ``,``/``<``).
_ATTRS = r"""(?:\s+[a-zA-Z_:][-\w:.]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?"""
_REAL_TAG = re.compile(r"</?([a-z][a-z0-9]*)" + _ATTRS + r">")
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)  # an unclosed one runs to the end
_LT = re.compile(r"<")
_HEADING_ID = re.compile(r'(<h[1-6]) id="[^"]*"')
_IMG_NO_ALT = re.compile(r"<img(?![^>]*\salt=)([^>]*?)(/?)>")
_EMPTY_P = re.compile(r"<p>\s*</p>\n?")
# C0 controls are invalid in HTML, and Python-Markdown uses \x02/\x03 as its own markers.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_local = threading.local()


def _extensions() -> list:
    """EXTENSIONS as instances, "extra" spelled out as the extensions it registers.

    Python-Markdown resolves a name through the installed packages' entry points
    first (importlib.metadata scans every installed distribution: ~10 ms of a
    cold `check`); importing the modules directly skips that and builds the same
    pipeline, in the same order.
    """
    from markdown.extensions import extra

    names = [n for e in EXTENSIONS for n in (extra.extensions if e == "extra" else [e])]
    return [importlib.import_module(f"markdown.extensions.{n}").makeExtension(**EXTENSION_CONFIGS.get(n, {}))
            for n in names]


def _markdown() -> markdown.Markdown:
    # Building the extension pipeline costs more than converting; keep one per thread.
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = markdown.Markdown(extensions=_extensions(), output_format="html")
    md.reset()
    return md


def markdown_html(body: str) -> str:
    """Plain Python-Markdown output, as the website would render the body."""
    # The leading blank line ends `meta`'s header block at once: the headers are
    # already parsed, and a first line like "Update: ..." must stay text.
    return _markdown().convert("\n" + CONTROL_CHARS.sub("", body))


def escape_pseudo_tags(html: str) -> str:
    """Escape every ``<`` that does not open a real HTML tag, comment or closing tag."""
    out = []
    pos = skip = 0
    for m in _LT.finditer(html):
        start = m.start()
        if start < max(pos, skip):
            continue
        tag = _REAL_TAG.match(html, start)
        if tag and tag.group(1) in HTML_TAGS:
            skip = tag.end()  # a "<" inside its attribute values is not a tag
            continue
        if html.startswith("<!--", start):
            continue
        out.append(html[pos:start])
        out.append("&lt;")
        pos = start + 1
        # Escape the matching ``>`` of a one-line pseudo-tag too, for symmetry.
        end = html.find(">", pos)
        nxt = html.find("<", pos)
        if end != -1 and (nxt == -1 or end < nxt) and "\n" not in html[pos:end]:
            out.append(html[pos:end])
            out.append("&gt;")
            pos = end + 1
    out.append(html[pos:])
    return "".join(out)


def clean_html(html: str) -> str:
    """Email clean-up of Markdown output (see module docstring)."""
    html = HTML_COMMENT.sub("", html)
    html = escape_pseudo_tags(html)
    html = _HEADING_ID.sub(r"\1", html)
    html = _IMG_NO_ALT.sub(r'<img alt=""\1\2>', html)
    return _EMPTY_P.sub("", html)


def content_html(body: str) -> str:
    """The email's content fragment for a Markdown body."""
    return clean_html(markdown_html(body))
