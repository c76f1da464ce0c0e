"""Markdown body -> the HTML fragment that goes inside the email.

Python-Markdown with the extensions TWIR's Pelican site uses, so the email
says what the web page says (SuperFences in place of fenced_code: it also
reads fences nested in quotes). Then clean-up for email:
- HTML comments go (drafts are full of them);
- raw "HTML" that is really Rust syntax (``Vec<T>``, ``only-<platforms>``)
  is escaped so it shows as text instead of vanishing as an unknown tag;
- heading ids go (no anchors in email), every image gets an ``alt``;
- headings are re-levelled (``outline_headings``): the issue title is the
  email's one ``<h1>``, so the content's top level becomes ``<h2>`` and no
  level is skipped, whatever the era (2013-2015 issues use ``#`` for
  sections, later ones ``##``; some jump from ``#`` to ``###``);
- tables sit in a horizontally scrollable wrapper (``wrap_tables``).
"""

from __future__ import annotations

import importlib
import re
import threading

import markdown

from mailer.issue import fastmarkdown
from mailer.issue.lazyimport import import_deferring
from mailer.issue.sanitize import HTML_TAGS, sanitize

# The site's set is "extra", "toc", "meta", "codehilite" (SITE_EXTENSIONS, what
# bench/render.py measures against). The email runs "extra" without its
# fenced_code: SuperFences (pymdown-extensions) also finds a fence inside a quote
# or a list item, where fenced_code turned Quote of the Week's compiler output
# (2021-04-14, 2022-03-16) into one run-on paragraph. It leaves out "toc": that
# only adds heading ids, which email strips anyway, and costs ~7% of the conversion.
SITE_EXTENSIONS = ["extra", "toc", "meta", "codehilite"]
EXTENSIONS = ["abbr", "attr_list", "def_list", "footnotes", "md_in_html", "tables", "meta",
              "pymdownx.highlight", "pymdownx.superfences"]
EXTENSION_CONFIGS = {
    # Inline colours: email clients drop <style>-based Pygments classes.
    # A dark style keeps its own background, so it reads the same in dark mode.
    # The codehilite class keeps the markup of Python-Markdown's codehilite.
    "pymdownx.highlight": {"noclasses": True, "pygments_style": "monokai", "guess_lang": False,
                           "css_class": "codehilite"},
    "codehilite": {"noclasses": True, "pygments_style": "monokai", "guess_lang": False},  # the site's
    "toc": {"anchorlink": False, "permalink": False},
}

# A real tag: known lower-case name, then attribute syntax only (no ``,``/``<``).
_ATTRS = r"""(?:\s+[a-zA-Z_:][-\w:.]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?"""
# A real tag of a known name, whole (a split on it keeps it: odd items).
_REAL_TAG_SPLIT = re.compile(r"(</?(?:" + "|".join(sorted(HTML_TAGS, key=len, reverse=True))
                             + r")(?![a-z0-9])" + _ATTRS + r">)")
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)  # an unclosed one runs to the end
_LT = re.compile(r"<")
_HEADING_ID = re.compile(r'(<h[1-6]) id="[^"]*"')
_IMG_NO_ALT = re.compile(r"<img(?![^>]*\salt=)([^>]*?)(/?)>")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
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

    # pymdownx.util takes two path helpers from urllib.request (~30 ms with the HTTP
    # and TLS modules it pulls in) for extensions the renderer does not load.
    import_deferring("pymdownx.util", {"urllib.request": ("pathname2url", "url2pathname")})
    names = [n for e in EXTENSIONS for n in (extra.extensions if e == "extra" else [e])]
    return [importlib.import_module(n if "." in n else f"markdown.extensions.{n}")
            .makeExtension(**EXTENSION_CONFIGS.get(n, {})) for n in names]


class _Markdown(markdown.Markdown):
    def build_extension(self, ext_name, configs):
        # An extension that loads another by name (SuperFences loads
        # "pymdownx.highlight") makes Python-Markdown scan every installed
        # distribution's entry points first (importlib.metadata: ~15 ms of a cold
        # `check`). A dotted name is the module path: the same class either way.
        if "." in ext_name and ":" not in ext_name:
            return importlib.import_module(ext_name).makeExtension(**configs)
        return super().build_extension(ext_name, configs)


def _markdown() -> markdown.Markdown:
    # Building the extension pipeline costs more than converting; keep one per thread.
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = _Markdown(extensions=_extensions(), output_format="html")
        fastmarkdown.install(md)  # the same passes, without the calls that cannot match
    md.reset()
    return md


def markdown_html(body: str) -> str:
    """Plain Python-Markdown output, as the website would render the body."""
    # The leading blank line ends `meta`'s header block at once: the headers are
    # already parsed, and a first line like "Update: ..." must stay text.
    return _markdown().convert("\n" + CONTROL_CHARS.sub("", body))


def escape_pseudo_tags(html: str) -> str:
    """Escape every ``<`` that does not open a real HTML tag, comment or closing tag."""
    # Real tags (and the "<" inside their attribute values) are found by one regex
    # split, in C; only the text between them, where a pseudo-tag can be, is
    # scanned in Python (it was every "<" of the page: 1,500 per issue).
    parts = _REAL_TAG_SPLIT.split(html)
    for i in range(0, len(parts), 2):
        if "<" in parts[i]:
            parts[i] = _escape_text(parts[i])
    return "".join(parts)


def _escape_text(text: str) -> str:
    """``escape_pseudo_tags`` for text that holds no real tag."""
    out = []
    pos = 0
    for m in _LT.finditer(text):
        start = m.start()
        if start < pos or text.startswith("<!--", start):
            continue
        out.append(text[pos:start])
        out.append("&lt;")
        pos = start + 1
        # Escape the matching ``>`` of a one-line pseudo-tag too, for symmetry.
        end = text.find(">", pos)
        nxt = text.find("<", pos)
        if end != -1 and (nxt == -1 or end < nxt) and "\n" not in text[pos:end]:
            out.append(text[pos:end])
            out.append("&gt;")
            pos = end + 1
    out.append(text[pos:])
    return "".join(out)


def clean_html(html: str) -> str:
    """Email clean-up of Markdown output (see module docstring)."""
    html = HTML_COMMENT.sub("", html)
    html = escape_pseudo_tags(html)
    html = _HEADING_ID.sub(r"\1", html)
    html = _IMG_NO_ALT.sub(r'<img alt=""\1\2>', html)
    return _EMPTY_P.sub("", html)


def content_html(body: str) -> str:
    """The email's content fragment for a Markdown body, sanitized (mailer.issue.sanitize)."""
    return sanitize(clean_html(markdown_html(body)))


def outline_headings(fragment) -> None:
    """Re-level the headings of a parsed content fragment in place (see module docstring).

    A heading goes one level below the nearest earlier heading of a higher source
    level (<h2> when there is none), so siblings stay siblings and nothing is
    skipped: ``#, ##, #, ###, ###`` becomes h2, h3, h2, h3, h3.
    """
    parents: list[tuple[int, int]] = []  # (source level, new level) of the open sections
    for h in fragment.iter(*_HEADINGS):
        source = int(h.tag[1])
        while parents and parents[-1][0] >= source:
            parents.pop()
        level = min(parents[-1][1] + 1, 6) if parents else 2
        parents.append((source, level))
        h.tag = f"h{level}"


TABLE_WRAPPER_STYLE = "overflow-x:auto;max-width:100%"


def wrap_tables(fragment) -> None:
    """Put each top-level table of a parsed content fragment in a scrollable ``div.tw``.

    Tables break between words only (no "mea|n" headers), so a wide one (the
    six-column perf triage of 2022) is wider than a phone: it scrolls inside
    its wrapper where the client allows it, instead of widening the email.
    """
    for table in list(fragment.iter("table")):
        if any(a.tag == "table" or a.get("class") == "tw" for a in table.iterancestors()):
            continue
        wrapper = table.makeelement("div", {"class": "tw", "style": TABLE_WRAPPER_STYLE})
        wrapper.tail, table.tail = table.tail, None  # text after the table stays after the wrapper
        table.addprevious(wrapper)
        wrapper.append(table)
