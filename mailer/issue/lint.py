"""`check`: lint an issue before it is sent (``check_issue``).

Errors: leftover draft placeholders, empty link targets, mojibake, missing
metadata, HTML over the size budget, anything that stops parsing/rendering.
Warnings: empty sections, http:// links, duplicate links, images without alt
text, unbalanced brackets around a URL, HTML close to the size budget.

The source is scanned line by line (so findings carry the file's line
numbers) with HTML comments and code blanked out first: drafts keep their
instructions in comments, and code may legitimately say ``http://``.
"""

from __future__ import annotations

import re
from pathlib import Path

import ftfy

from mailer.config import Settings
from mailer.errors import TwirMailError
from mailer.issue.content import CONTROL_CHARS, HTML_COMMENT
from mailer.issue.parse import parse_issue
from mailer.models import Finding, Issue, Rendered, Severity

PLACEHOLDERS = ("INSERT_LINK_HERE", "REDDIT_LINK_HERE", "$twir_issue_number")
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,}).*?^\1\2[`~]*[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
_HEADING = re.compile(r"^(#{1,6})\s+(\S.*?)\s*#*\s*$")
_REF_DEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*<?(\S*?)>?(?:\s+.*)?$")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>")
_RAW_HREF = re.compile(r"""<a\s[^>]*href\s*=\s*["']([^"']*)["']""", re.I)
_RAW_IMG = re.compile(r"<img\b[^>]*>", re.I)
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
    return [_CODE_SPAN.sub(_blank, line) for line in text.split("\n")]


def inline_links(line: str):
    """Yield (start, end, label, url, is_image) for ``[label](url)`` links on a line.

    Parses the URL as Markdown does: balanced parentheses belong to it.
    """
    for m in re.finditer(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(", line):
        i = m.end()
        while i < len(line) and line[i] in " \t":
            i += 1
        if i < len(line) and line[i] == "<":
            close = line.find(">", i)
            url, j = (line[i + 1:close], close + 1) if close != -1 else ("", i)
        else:
            depth, j = 0, i
            while j < len(line) and not line[j].isspace():
                if line[j] == "(":
                    depth += 1
                elif line[j] == ")":
                    if depth == 0:
                        break
                    depth -= 1
                j += 1
            url = line[i:j]
        end = line.find(")", j)
        yield m.start(), (end + 1 if end != -1 else len(line)), m.group(2), url, bool(m.group(1))


def mojibake(line: str) -> str | None:
    """The repaired text if ``line`` holds UTF-8 read as a legacy charset, else None."""
    fixed = ftfy.fix_encoding(line)
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
    def __init__(self, issue: Issue):
        self.issue = issue
        self.path = str(issue.path)
        self.findings: list[Finding] = []
        self.lines = scan_lines(issue.body)

    def add(self, severity: Severity, index: int | None, message: str, code: str) -> None:
        line = self.issue.body_line + index if index is not None else None
        self.findings.append(Finding(self.path, line, severity, message, code))

    def error(self, index, message, code):
        self.add(Severity.ERROR, index, message, code)

    def warn(self, index, message, code):
        self.add(Severity.WARNING, index, message, code)

    def run(self) -> list[Finding]:
        self.metadata()
        links: list[tuple[int, str]] = []
        for i, line in enumerate(self.lines):
            self.placeholders(i, line)
            fixed = mojibake(line)
            if fixed is not None:
                self.error(i, f"mojibake (text decoded with the wrong charset): {_diff(line, fixed)}", "mojibake")
            links += self.links(i, line)
            for ch in sorted(set(CONTROL_CHARS.findall(line))):
                self.warn(i, f"invisible control character U+{ord(ch):04X} (dropped from the email)", "control")
        self.link_checks(links)
        self.empty_sections()
        return self.findings

    def metadata(self) -> None:
        if not self.issue.category:
            self.error(None, "missing Category header", "metadata")
        if "number" not in self.issue.headers:
            self.warn(None, f"no Number header (using {self.issue.number} from the title)", "metadata")

    def placeholders(self, i: int, line: str) -> None:
        for word in PLACEHOLDERS:
            if word in line:
                self.error(i, f"draft placeholder {word} left in the issue", "placeholder")

    def links(self, i: int, line: str) -> list[tuple[int, str, bool]]:
        """(line index, URL, is a story link) of every link on the line; warns about images."""
        found = []
        for start, end, label, url, is_image in inline_links(line):
            if is_image:
                if not label.strip():
                    self.warn(i, f"image without alt text: {url}", "image-alt")
                continue
            if not url.strip():
                self.error(i, f"link [{_short(label)}] has an empty target", "empty-link")
                continue
            before = line[:start]
            if url.count("(") != url.count(")") or (
                    line[end:end + 1] == ")" and before.count("(") <= before.count(")")):
                self.warn(i, f"unbalanced brackets around URL {url}", "brackets")
            found.append((i, url, bool(_STORY_PREFIX.match(before))))
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

    def link_checks(self, links: list[tuple[int, str, bool]]) -> None:
        stories: dict[str, int] = {}
        for i, url, is_story in links:
            if url.startswith("http://"):
                self.warn(i, f"insecure http:// link {url}", "http")
            if not is_story or url in PLACEHOLDERS:
                continue
            if url in stories:
                self.warn(i, f"duplicate link {url} (also on line {self.issue.body_line + stories[url]})", "duplicate")
            else:
                stories[url] = i

    def empty_sections(self) -> None:
        headings = [(i, len(m.group(1)), m.group(2)) for i, line in enumerate(self.lines)
                    if (m := _HEADING.match(line))]
        for n, (i, level, title) in enumerate(headings):
            nxt = headings[n + 1] if n + 1 < len(headings) else None
            stop = nxt[0] if nxt else len(self.lines)
            has_text = any(line.strip() for line in self.lines[i + 1:stop])
            if not has_text and (nxt is None or nxt[1] <= level):
                self.warn(i, f"empty section: {title}", "empty-section")

    def size(self, html_bytes: int, settings: Settings) -> None:
        kib = html_bytes / 1024
        limits = settings.check
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


def check_issue(path: str | Path, settings: Settings) -> list[Finding]:
    """Every finding for one issue file; never raises for a bad issue."""
    try:
        issue = parse_issue(path)
    except TwirMailError as exc:
        return [Finding(exc.path or str(path), exc.line, Severity.ERROR, exc.message, "parse")]
    return check_parsed(issue, settings)[0]


def check_parsed(issue: Issue, settings: Settings) -> tuple[list[Finding], Rendered | None]:
    """The findings for a parsed issue, and its rendering (None if it cannot be rendered):
    `send` checks and sends the same rendering instead of rendering twice."""
    from mailer.issue.render import render_issue

    linter = _Linter(issue)
    findings = linter.run()
    rendered = None
    try:
        rendered = render_issue(issue, settings)
    except TwirMailError as exc:
        linter.error(None, f"cannot render: {exc.message}", "render")
    else:
        linter.size(rendered.html_bytes, settings)
    return sorted(findings, key=lambda f: (f.line or 0, f.severity != Severity.ERROR)), rendered
