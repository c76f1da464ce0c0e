"""`check`: lint an issue before it is sent (``check_issue``).

Every finding has a stable code (docs/check.md lists them). Errors: leftover
draft placeholders, dead links (empty, misspelled scheme, no scheme, ``] (``,
retired places), unsafe markup, mojibake, metadata that disagrees, HTML over
the size budget, anything that stops parsing/rendering. Warnings: empty or
unfilled sections, stale events, http:// links, duplicate links, images
without alt text, unbalanced brackets or a URL broken across lines.
Link targets are judged in mailer.issue.links, TWIR's conventions in
mailer.issue.drafts, markup by the renderer's own allowlist (mailer.issue.sanitize).

The source is scanned line by line (so findings carry the file's line
numbers) with HTML comments and code blanked out first: drafts keep their
instructions in comments, and code may legitimately say ``http://``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Callable, Iterable

from markdown.inlinepatterns import BACKTICK_RE, BacktickInlineProcessor

from mailer.config import Settings
from mailer.errors import TwirMailError
from mailer.issue import drafts, links
from mailer.issue.content import CONTROL_CHARS, HTML_COMMENT
from mailer.issue.lazyimport import import_deferring
from mailer.issue.parse import parse_issue
from mailer.issue.sanitize import unsafe_markup
from mailer.models import Finding, Issue, Rendered, Severity

# (issue, settings) -> (findings, rendering or None): `check` as the caller wants it run
# (the CLI passes the preflight's, which also builds the message, as `send` would).
Checker = Callable[..., "tuple[list[Finding], Rendered | None]"]

PLACEHOLDERS = ("INSERT_LINK_HERE", "REDDIT_LINK_HERE", "$twir_issue_number")
# Possessive: a backtracking `{3,} is cubic on a line of backticks.
_FENCE = re.compile(r"^( {0,3})(`{3,}+|~{3,}+).*?^\1\2[`~]*[ \t]*$", re.S | re.M)
_CODE_SPANS = BacktickInlineProcessor(BACKTICK_RE)
_REF_DEF = re.compile(r"^ {0,3}\[(?!\^)([^\]]+)\]:\s*<?(\S*?)>?(?:\s+.*)?$")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>")
# Bounded: "<a " without a ">" must not make the scan quadratic.
_RAW_HREF = re.compile(r"""<a\s[^>]{0,2000}?href\s*=\s*["']([^"']{0,4096})["']""", re.I)
_RAW_IMG = re.compile(r"<img\b[^>]{0,4096}>", re.I)
# Silences one finding: `<!-- check: ignore duplicate -->` on its line or alone on the line above.
_IGNORE = re.compile(r"<!--\s*check:\s*ignore\s+([\w\s,-]+?)\s*-->", re.I)
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{2,}")
# A list item that starts with its link ("* [video] [Title](url)"): a story.
# The same story twice is a mistake; a meetup group linked by several events is not.
_STORY_PREFIX = re.compile(r"^\s*(?:[*+-]|\d+\.)\s+(?:\[[^\]]*\]\s*)?$")


def _blank(match: re.Match) -> str:
    """Replace a match by spaces, keeping its newlines (and so every line number)."""
    return re.sub(r"[^\n]", " ", match.group(0))


def scan_lines(body: str) -> list[str]:
    """Body lines with comments, fenced code and code spans blanked out."""
    text = _FENCE.sub(_blank, HTML_COMMENT.sub(_blank, body))
    return [_blank_code_spans(line) for line in text.split("\n")]


def _blank_code_spans(line: str) -> str:
    """Blank each `code span` as Python-Markdown pairs them (its own pairing routine:
    a regex like ``(`+).*?\\1`` is quadratic, even cubic, on a line of backticks)."""
    if "`" not in line:
        return line
    out, pos, i = [], 0, line.find("`")
    while i != -1:
        if i > 0 and line[i - 1] == "\\" and (i < 2 or line[i - 2] != "\\"):
            i = line.find("`", i + 1)  # an escaped backtick
            continue
        start, end = _CODE_SPANS.find_code_spans(i, line)
        if end is None:
            i = line.find("`", start)
            continue
        stop = end + (start - i)
        out += [line[pos:i], " " * (stop - i)]
        pos, i = stop, line.find("`", stop)
    return "".join(out) + line[pos:]


@functools.cache
def _ftfy():
    # ftfy.formatting measures display widths with wcwidth (~10 ms to import), which
    # fix_encoding never calls: it loads if something does.
    return import_deferring("ftfy", {"wcwidth": ("wcswidth", "wcwidth")})


@functools.cache
def _looks_bad():
    """ftfy's own mojibake test, ``ftfy.badness.is_bad``, without the ftfy package.

    ``fix_encoding`` returns a line unchanged unless ``is_bad`` finds a likely
    mojibake sequence in it; the package's import (character tables and codecs,
    ~20 ms of a cold `check`) waits for such a line. badness.py imports only
    ``re`` and ``warnings``, so it runs on its own.
    """
    import importlib.util

    spec = importlib.util.find_spec("ftfy")
    path = Path(spec.submodule_search_locations[0]) / "badness.py"
    badness_spec = importlib.util.spec_from_file_location("mailer.issue._ftfy_badness", path)
    module = importlib.util.module_from_spec(badness_spec)
    badness_spec.loader.exec_module(module)
    return module.is_bad


def mojibake(line: str) -> str | None:
    """The repaired text if ``line`` holds UTF-8 read as a legacy charset, else None."""
    if line.isascii():
        return None
    fixed = _ftfy().fix_encoding(line) if _looks_bad()(line) else line
    if fixed != line:
        return fixed
    # ftfy misses emoji read as Mac Roman: 🦀 (F0 9F A6 80) shows as "\uf8ffü¶Ä",
    # and the private-use Apple logo (F0) is often lost on the way.
    for run in _NON_ASCII_RUN.findall(line):
        for codec in ("mac_roman", "cp1252"):
            try:
                raw = run.encode(codec)
            except UnicodeEncodeError:
                continue
            # Emoji are F0 9F xx xx: only a run starting with 9F ("ü") lost its F0.
            if len(raw) >= 3 and raw[0] == 0x9F and all(0x80 <= b <= 0xBF for b in raw[:3]):
                raw = b"\xf0" + raw
            try:
                repaired = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if repaired != run:
                return line.replace(run, repaired)
    return None


class _Linter:
    def __init__(self, issue: Issue, settings: Settings):
        self.issue = issue
        self.settings = settings
        self.path = str(issue.path)
        self.findings: list[Finding] = []
        self.lines = scan_lines(issue.body)
        self.outline = drafts.Outline(self.lines)

    def add(self, severity: Severity, index: int | None, message: str, code: str) -> None:
        line = self.issue.body_line + index if index is not None else None
        self.findings.append(Finding(self.path, line, severity, message, code))

    def error(self, index, message, code):
        self.add(Severity.ERROR, index, message, code)

    def warn(self, index, message, code):
        self.add(Severity.WARNING, index, message, code)

    def run(self) -> list[Finding]:
        self.metadata()
        for i, line in enumerate(self.lines):
            self.placeholders(i, line)
            fixed = mojibake(line)
            if fixed is not None:
                self.error(i, f"mojibake (text decoded with the wrong charset): {_diff(line, fixed)}", "mojibake")
            for ch in sorted(set(CONTROL_CHARS.findall(line))):
                self.warn(i, f"invisible control character U+{ord(ch):04X} (dropped from the email)", "control")
            for what in unsafe_markup(line):
                self.error(i, f"unsafe markup: {what} (removed from the email)", "unsafe-html")
            for label, url in links.spaced_links(line):
                self.error(i, f"[{_short(label)}] ({_short(url)}): the space between ] and ( makes it text, "
                              "not a link", "link-space")
        self.link_checks(self.links())
        unfilled = self.report(drafts.unfilled_slots(self.issue.body, self.lines, self.outline))
        self.report(drafts.event_dates(self.lines, self.outline))
        self.empty_sections(skip={self.outline.section(i) for i in unfilled})
        return self.findings

    def report(self, found) -> set[int]:
        """Add (index, severity, code, message) tuples; returns their line indexes."""
        for index, severity, code, message in found:
            self.add(severity, index, message, code)
        return {index for index, *_ in found}

    def metadata(self) -> None:
        if not self.issue.category:
            self.error(None, "missing Category header", "metadata")
        if "number" not in self.issue.headers:
            self.warn(None, f"no Number header (using {self.issue.number} from the title)", "metadata")
        self.report(drafts.metadata(self.issue))

    def placeholders(self, i: int, line: str) -> None:
        for word in PLACEHOLDERS:
            if word in line:
                self.error(i, f"draft placeholder {word} left in the issue", "placeholder")

    def links(self) -> list[tuple[int, str, bool]]:
        """(line index, URL, is a story link) of every link; warns about images and odd links."""
        found = []
        for link in links.iter_links("\n".join(self.lines)):
            i = link.line
            if link.is_image:
                if not link.label.strip():
                    self.warn(i, f"image without alt text: {link.url}", "image-alt")
                found.append((i, link.url, False))
                continue
            if not link.url.strip():
                self.error(i, f"link [{_short(link.label)}] has an empty target", "empty-link")
                continue
            if link.broken:
                self.warn(link.url_line, f"URL of [{_short(link.label)}] is broken across lines "
                                         "(the web page's link is dead; join the lines)", "broken-url")
            before = link.before
            if link.url.count("(") != link.url.count(")") or (
                    link.after == ")" and before.count("(") <= before.count(")")):
                self.warn(i, f"unbalanced brackets around URL {link.url}", "brackets")
            found.append((link.url_line, link.url, bool(_STORY_PREFIX.match(before))))
        for i, line in enumerate(self.lines):
            found += self.other_links(i, line)
        return found

    def other_links(self, i: int, line: str) -> list[tuple[int, str, bool]]:
        """Reference definitions, autolinks and raw HTML links and images of one line."""
        found = []
        for m in _REF_DEF.finditer(line):
            if m.group(2):
                found.append((i, m.group(2), False))
            else:
                self.error(i, f"link reference [{m.group(1)}] has an empty target", "empty-link")
        found += [(i, m.group(1), False) for m in _AUTOLINK.finditer(line)]
        for m in _RAW_HREF.finditer(line):
            if m.group(1).strip():
                found.append((i, m.group(1), False))
            else:
                self.error(i, "raw HTML link <a href=\"\"> has an empty target", "empty-link")
        for m in _RAW_IMG.finditer(line):
            if not re.search(r"\salt\s*=\s*[\"'][^\"']+", m.group(0)):
                self.warn(i, "image without alt text", "image-alt")
        return found

    def link_checks(self, found: list[tuple[int, str, bool]]) -> None:
        retired = tuple(self.settings.check.retired_links)
        stories: dict[tuple[str, int | None], int] = {}
        for i, url, is_story in found:
            if url in PLACEHOLDERS:
                continue  # reported as a placeholder
            # Control characters are dropped by the renderer (warned about as "control").
            for severity, code, message in links.url_problems(CONTROL_CHARS.sub("", url), retired=retired):
                if code != "empty-link":
                    self.add(severity, i, message, code)
            if not is_story:
                continue
            key = (url, self.outline.duplicate_scope(i))
            if key in stories:
                self.warn(i, f"duplicate link {url} (also on line {self.issue.body_line + stories[key]})", "duplicate")
            else:
                stories[key] = i

    def empty_sections(self, skip: set) -> None:
        headings = self.outline.headings
        for n, h in enumerate(headings):
            nxt = headings[n + 1] if n + 1 < len(headings) else None
            stop = nxt.index if nxt else len(self.lines)
            has_text = any(line.strip() for line in self.lines[h.index + 1:stop])
            # An empty sub-section of an unfilled slot's section is the same gap: reported once.
            unfilled = h in skip or any(a in skip for a in self.outline.ancestors(h))
            if not has_text and (nxt is None or nxt.level <= h.level) and not unfilled:
                self.warn(h.index, f"empty section: {h.title}", "empty-section")

    def size(self, html_bytes: int) -> None:
        kib = html_bytes / 1024
        limits = self.settings.check
        if kib > limits.html_error_kib:
            self.error(None, f"HTML is {kib:.1f} KiB, over the {limits.html_error_kib} KiB limit "
                             "(Gmail clips messages near 102 KB)", "size")
        elif kib > limits.html_warning_kib:
            self.warn(None, f"HTML is {kib:.1f} KiB, close to the limit ({limits.html_warning_kib} KiB warning)", "size")

def _short(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _diff(line: str, fixed: str) -> str:
    """The first differing stretch, as `bad` -> `good`."""
    a = 0
    while a < min(len(line), len(fixed)) and line[a] == fixed[a]:
        a += 1
    b, c = len(line), len(fixed)
    while b > a and c > a and line[b - 1] == fixed[c - 1]:
        b, c = b - 1, c - 1
    return f"{line[a:b]!r} should probably be {fixed[a:c]!r}"


def check_issue(path: str | Path, settings: Settings, *, ignore: Iterable[str] = (),
                checker: Checker | None = None) -> list[Finding]:
    """Every finding for one issue file; never raises for a bad issue.

    ``checker`` checks the parsed issue (``check_parsed`` by default; `check` passes
    the preflight's, which also builds the message)."""
    try:
        issue = parse_issue(path)
    except TwirMailError as exc:
        return [parse_finding(exc, path)]
    return (checker or check_parsed)(issue, settings, ignore=ignore)[0]


def parse_finding(exc: TwirMailError, path: str | Path) -> Finding:
    """An issue that cannot be read or parsed, as a finding."""
    return Finding(exc.path or str(path), exc.line, Severity.ERROR, exc.message, "parse")


def check_parsed(issue: Issue, settings: Settings, *,
                 ignore: Iterable[str] = ()) -> tuple[list[Finding], Rendered | None]:
    """The findings for a parsed issue, and its rendering (None if it cannot be rendered):
    `send` checks and sends the same rendering instead of rendering twice."""
    from mailer.issue.render import render_issue

    linter = _Linter(issue, settings)
    findings = linter.run()
    rendered = None
    try:
        rendered = render_issue(issue, settings)
    except TwirMailError as exc:
        linter.error(None, f"cannot render: {exc.message}", "render")
    else:
        linter.size(rendered.html_bytes)
    return silence(findings, issue, ignore), rendered


def silence(findings: list[Finding], issue: Issue, ignore: Iterable[str] = ()) -> list[Finding]:
    """Findings less those whose code is in ``ignore`` or silenced in the issue by an
    ``<!-- check: ignore CODE -->`` comment on their line (or alone on the line above), sorted."""
    ignore = set(ignore)
    silenced: dict[int, set[str]] = {}
    for index, line in enumerate(issue.body.split("\n")):
        for m in _IGNORE.finditer(line):
            codes = set(re.split(r"[\s,]+", m.group(1).strip()))
            alone = not _IGNORE.sub("", line).strip()
            silenced.setdefault(issue.body_line + index + alone, set()).update(codes)
    kept = [f for f in findings if f.code not in ignore and f.code not in silenced.get(f.line or 0, ())]
    return sorted(kept, key=lambda f: (f.line or 0, f.severity != Severity.ERROR))


def link_targets(issue: Issue, settings: Settings) -> list[tuple[int, str]]:
    """(file line, URL) of every link and image of an issue, found exactly as `check` finds them
    (for the live checker)."""
    found = _Linter(issue, settings).links()
    return [(issue.body_line + i, "".join(CONTROL_CHARS.sub("", url).split())) for i, url, _ in found]
