"""The plain-text part, built from the content's HTML tree (not the layout).

Headings are underlined, lists keep their bullets and nesting, quotes get
``> ``, code blocks stay verbatim. Each link becomes ``text [n]`` and the
section's links are listed as ``[n] URL`` after the section (sections are the
``<h2>`` headings). Lines are wrapped at 78 columns; words (so URLs) are never
broken, so a line holding only a long URL may be longer.
"""

from __future__ import annotations

import re
import textwrap

from lxml import etree

from mailer.models import SponsorInfo

WIDTH = 78
BLOCK = frozenset("p div h1 h2 h3 h4 h5 h6 ul ol li blockquote pre table thead tbody tfoot tr hr dl dt dd details summary figure".split())
SKIP = frozenset(["style", "script", "head", "title"])
# A whitespace run to become one space: a lone space is left alone, which lets `re`
# skip ahead between runs (3-4x faster than replacing every run, single spaces too).
_WS = re.compile(r"[ \t\r\n\f\v](?:[ \t\r\n\f\v]+|(?<=[\t\r\n\f\v]))")
_BR = "\x00"  # stands for <br> until wrapping
# Opens the sponsor block in both parts (the HTML template gets it from the renderer).
SPONSOR_LINE = "This issue is sponsored by"
# Not single spaces between words: textwrap also splits on \t\n\v\f\r, and drops
# the empty words of leading, trailing or doubled spaces.
_OTHER_WS = re.compile(r"[\t\n\x0b\x0c\r]")


def wrap(text: str, width: int = WIDTH) -> list[str]:
    """``textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)``.

    The same lines, faster for what the text part feeds it: words separated by
    single spaces take a plain greedy loop (textwrap's chunking regexes
    dominated the text part); anything else goes to textwrap itself.
    """
    # textwrap treats a word that str.strip() empties (none, or only Unicode
    # spaces such as U+00A0) as whitespace: such text goes to textwrap.
    if ("  " in text or text[:1] == " " or text[-1:] == " " or _OTHER_WS.search(text)
            or (not text.isascii() and not all(w.strip() for w in text.split(" ")))):
        return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    if len(text) <= width:
        return [text] if text else []  # most list items: one line
    words = text.split(" ")
    lines, line = [], words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return lines


class _Text:
    def __init__(self):
        self.lines: list[str] = []
        self.refs: dict[str, int] = {}  # URL -> number, for the current section
        self.count = 0

    # -- links ------------------------------------------------------------
    def ref(self, url: str) -> int:
        if url not in self.refs:
            self.count += 1
            self.refs[url] = self.count
        return self.refs[url]

    def flush_refs(self) -> None:
        if not self.refs:
            return
        self.blank()
        for url, n in self.refs.items():
            self.lines.append(f"[{n}] {url}")
        self.refs = {}

    # -- output -----------------------------------------------------------
    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def paragraph(self, text: str, first: str = "", rest: str = "") -> None:
        text = _WS.sub(" ", text).strip(" ")
        width = max(WIDTH - len(rest), 20)
        if _BR not in text:  # most paragraphs: one chunk
            if text.strip():
                for j, line in enumerate(wrap(text.strip(), width) or [""]):
                    self.lines.append(((rest if j else first) + line).rstrip())
            return
        if not text.replace(_BR, "").strip():
            return
        for i, chunk in enumerate(text.split(_BR)):
            chunk = chunk.strip()
            wrapped = wrap(chunk, width) or [""]
            for j, line in enumerate(wrapped):
                prefix = first if (i == 0 and j == 0) else rest
                self.lines.append((prefix + line).rstrip())


def _inline(node, out: _Text) -> str:
    """Text of an inline element and its children, links as ``text [n]``."""
    tag = node.tag if isinstance(node.tag, str) else ""
    if tag in SKIP:
        return ""
    if tag == "br":
        return _BR
    if tag == "img":
        alt = (node.get("alt") or "").strip()
        return f"[{alt}]" if alt else ""
    inner = node.text or ""
    if len(node):
        inner += "".join([_inline(c, out) + (c.tail or "") for c in node])
    if tag == "a" and node.get("href"):
        return _link(node.get("href"), inner, out)
    return inner


def _link(href: str, inner: str, out: _Text) -> str:
    label = _WS.sub(" ", inner).strip()
    if href.startswith("mailto:"):
        address = href[len("mailto:"):]
        return label if address in label else f"{label} <{address}>".strip()
    if not label or label.rstrip("/") == href.rstrip("/"):
        return href
    return f"{inner} [{out.ref(href)}]"


def _blocks(node, out: _Text, first: str = "", rest: str = "") -> None:
    """Render a container: runs of inline content become paragraphs."""
    buf: list[str] = [node.text or ""]

    def flush():
        nonlocal first
        text = "".join(buf)
        if text.replace(_BR, "").strip():
            out.paragraph(text, first, rest)
            first = rest
        buf.clear()

    for child in node:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in BLOCK:
            flush()
            _block(child, out, first, rest)
            first = rest
            buf.append(child.tail or "")
        else:
            buf.append(_inline(child, out) + (child.tail or ""))
    flush()


def _block(node, out: _Text, first: str, rest: str) -> None:
    tag = node.tag
    if tag in ("h1", "h2"):
        if tag == "h2":
            out.flush_refs()
        _heading(node, out, "=" if tag == "h1" else "=", rest)
    elif tag in ("h3", "h4", "h5", "h6"):
        _heading(node, out, "-" if tag == "h3" else "", rest)
    elif tag in ("ul", "ol"):
        out.blank() if not rest else None
        for i, li in enumerate(c for c in node if c.tag == "li"):
            bullet = f"{i + 1}. " if tag == "ol" else "* "
            _blocks(li, out, first + bullet if i == 0 else rest + bullet, rest + " " * len(bullet))
        out.blank() if not rest else None
    elif tag == "blockquote":
        out.blank()
        _blocks(node, out, first + "> ", rest + "> ")
        out.blank()
    elif tag == "pre":
        out.blank()
        for line in "".join(node.itertext()).rstrip("\n").split("\n"):
            out.lines.append((rest + "    " + line).rstrip())
        out.blank()
    elif tag == "hr":
        out.blank()
        out.lines.append(rest + "-" * 20)
        out.blank()
    elif tag == "tr":
        cells = [_WS.sub(" ", _inline(c, out).replace(_BR, " ")).strip() for c in node if c.tag in ("td", "th")]
        out.paragraph(" | ".join(cells), first, rest + "  ")
    elif tag == "p":
        if not rest:
            out.blank()
        _blocks(node, out, first, rest)
        if not rest:
            out.blank()
    else:  # div, table, li content, dl ...
        _blocks(node, out, first, rest)


def _heading(node, out: _Text, underline: str, rest: str) -> None:
    text = _WS.sub(" ", _inline(node, out)).strip()
    if not text:
        return
    out.blank()
    out.paragraph(text, rest, rest)
    if underline:
        out.lines.append(rest + underline * min(len(text), WIDTH))
    out.blank()


def html_to_text(fragment: etree._Element) -> str:
    """Plain text of a content fragment (an element wrapping the content)."""
    out = _Text()
    _blocks(fragment, out)
    out.flush_refs()
    while out.lines and out.lines[-1] == "":
        out.lines.pop()
    return "\n".join(out.lines) + "\n"


def text_header(*, name: str, number: int, date: str, web_url: str) -> str:
    head = f"{name} {number} · {date}"
    return f"{head}\n{'=' * len(head)}\n\nRead this issue on the web:\n{web_url}\n\n"


def text_footer(*, name: str, web_url: str, sponsor: SponsorInfo | None, privacy_url: str,
                unsubscribe_url: str, postal_address: str = "") -> str:
    paras = []
    if sponsor:  # the same words as the HTML sponsor panel, the link written out
        paras.append(f"{SPONSOR_LINE} {sponsor.name}.")
        if sponsor.text:
            paras.append(sponsor.text)
        if sponsor.url:
            paras.append(sponsor.url)
        paras.append("")
    paras += [
        "Read this issue on the web:",
        web_url,
        f"You receive {name} because you subscribed to it.",
        f"Unsubscribe: {unsubscribe_url}",
        f"Privacy policy: {privacy_url}",
    ]
    if postal_address:
        paras.append(postal_address)
    lines = ["", "-- "]
    for para in paras:  # the names and text come from settings: wrap them too, URLs whole
        lines += wrap(para) or [""]
    return "\n".join(lines) + "\n"
