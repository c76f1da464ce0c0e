"""The one allowlist for an issue's markup: what the renderer keeps, what `check` reports.

TWIR content comes from community pull requests, so raw HTML in an issue is
untrusted. The renderer passes the content fragment through ``nh3`` (the
bindings of Rust's ``ammonia``, a maintained html5ever-based sanitizer) with
the allowlist below; `check` reads the same allowlist (``unsafe_markup``) to
name what the renderer will drop, line by line, before anyone sends it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import nh3

# Elements a TWIR author may write as raw HTML. Anything else that looks like a
# tag (``<T>``, ``<Vec<T>``, ``<impl Log>``) is text and gets escaped (content.py).
HTML_TAGS = frozenset("""
a abbr b bdi bdo blockquote br caption center cite code col colgroup dd del details dfn div dl dt em
figcaption figure font h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strike
strong sub summary sup table tbody td tfoot th thead time tr tt u ul var wbr
""".split())
# Attributes allowed on every element: Pygments (codehilite) colours with inline
# styles, Markdown's footnotes use id/class, and tables use align.
GENERIC_ATTRIBUTES = frozenset({"title", "class", "id", "style", "dir", "lang", "align"})
TAG_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "name"}),
    "img": frozenset({"src", "alt", "width", "height", "border"}),
    "td": frozenset({"colspan", "rowspan", "valign", "width"}),
    "th": frozenset({"colspan", "rowspan", "valign", "width", "scope"}),
    "col": frozenset({"span", "width"}),
    "colgroup": frozenset({"span", "width"}),
    "ol": frozenset({"start", "type"}),
    "li": frozenset({"value"}),
    "table": frozenset({"width", "border", "cellpadding", "cellspacing"}),
    "font": frozenset({"color", "face", "size"}),
    "time": frozenset({"datetime"}),
    "blockquote": frozenset({"cite"}),
    "q": frozenset({"cite"}),
    "del": frozenset({"cite", "datetime"}),
    "ins": frozenset({"cite", "datetime"}),
    "details": frozenset({"open"}),
}
URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
# ammonia's list of safe schemes (http, https, mailto, irc, ftp, tel, ...): javascript:,
# vbscript:, data: and anything else a client could execute are dropped.
URL_SCHEMES = frozenset(nh3.ALLOWED_URL_SCHEMES)
# Elements removed with their content (never shown as text).
DROPPED_WITH_CONTENT = frozenset({"script", "style"})

_TAG_OPEN = re.compile(r"<([a-zA-Z][a-zA-Z0-9]*)(?=[\s/>])")
_ATTR = re.compile(r"([^\s=>/\"']+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")
MAX_TAG = 4096  # no real tag is longer: keeps odd input ("<a href=<a href=...") linear
_WS = re.compile(r"\s+")


def allowed(tag: str, attribute: str) -> bool:
    return attribute in GENERIC_ATTRIBUTES or attribute in TAG_ATTRIBUTES.get(tag, ())


def unsafe_url(url: str) -> str | None:
    """The scheme of a URL a mail client must not open (``javascript``...), else None.

    Relative URLs are not unsafe (`check` reports them as dead links instead)."""
    scheme = urlsplit(_WS.sub("", url)).scheme.lower() if ":" in url else ""
    if scheme and scheme not in URL_SCHEMES:
        return scheme
    return None


def _filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute in URL_ATTRIBUTES:
        # A URL wrapped across lines in the source: the newline is removed, not
        # written as %0A (which would make the link dead).
        return _WS.sub("", value)
    return value


def sanitize(html: str) -> str:
    """``html`` with every element, attribute and URL outside the allowlist removed."""
    return nh3.clean(
        html,
        tags=set(HTML_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={"*": set(GENERIC_ATTRIBUTES), **{t: set(a) for t, a in TAG_ATTRIBUTES.items()}},
        attribute_filter=_filter,
        url_schemes=set(URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )


def unsafe_markup(line: str) -> list[str]:
    """What the sanitizer removes from the raw HTML tags on one source line, as phrases."""
    problems = []
    for tag in _TAG_OPEN.finditer(line):
        name = tag.group(1).lower()
        close = line.find(">", tag.end(), tag.end() + MAX_TAG)
        if name not in HTML_TAGS or close == -1:
            continue  # not a tag the renderer keeps: content.py escapes it to text
        for attr in _ATTR.finditer(line, tag.end(), close):
            key, value = attr.group(1).lower(), (attr.group(2) or "").strip("\"'")
            if not allowed(name, key):
                problems.append(f"{key}= attribute on <{name}>")
            elif key in URL_ATTRIBUTES and key != "href" and (scheme := unsafe_url(value)):
                # (an href is a link: `check` judges every link's target in mailer.issue.links)
                problems.append(f"{scheme}: URL in <{name} {key}=>")
    return problems
