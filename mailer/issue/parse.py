"""Read a TWIR issue: Pelican ``Key: value`` headers, a blank line, Markdown.

Headers used: ``Title``, ``Number``, ``Date``, ``Category`` and the optional
overrides ``Subject``, ``Preheader`` and ``Sponsor``
(``Sponsor: Name | https://link | https://logo.png | line of text``, only the
name required; ``Sponsor: none`` removes the configured sponsor block).
"""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit

from mailer.errors import IssueError
from mailer.issue.content import CONTROL_CHARS
from mailer.models import Issue, SponsorInfo

SUFFIXES = (".md", ".markdown")
_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*):\s*(.*?)\s*$")
_NUMBER_IN_TITLE = re.compile(r"([0-9]+)\s*$")
# The sponsor block is disabled for an issue with one of these values.
NO_SPONSOR = {"none", "-", "off"}
# Published issues are under 40 KiB; an email over ~100 KiB of HTML is clipped by
# Gmail. A file this large is a mistake (a log pasted in), refused before parsing.
MAX_ISSUE_BYTES = 512 * 1024
# Python-Markdown's link pattern rescans the rest of a paragraph for every open
# "[" or "(", its HTML parser for every unclosed "<tag": thousands of them take
# minutes. Real issues nest two or three.
MAX_BRACKET_DEPTH = 32
_BRACKET = re.compile(r"[\[\]()>]|<(?=[A-Za-z/!])")
_OPENER = {"]": "[", ")": "(", ">": "<"}
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")  # what separates paragraphs (whitespace-only lines)


def read_text(path: Path) -> str:
    """The file as text, or an IssueError naming the file (and line of bad bytes)."""
    try:
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            # Reading a named pipe or a device would block or never end.
            raise IssueError("not a regular file", path=path)
        if stat.S_ISREG(mode) and (size := path.stat().st_size) > MAX_ISSUE_BYTES:
            raise IssueError(f"file is {size / 1024:.0f} KiB, over the {MAX_ISSUE_BYTES // 1024} KiB limit "
                             "for an issue", path=path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise IssueError("no such file", path=path) from None
    except IsADirectoryError:
        raise IssueError("is a directory, not an issue file", path=path) from None
    except OSError as exc:
        raise IssueError(f"cannot read: {exc.strerror}", path=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise IssueError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", path=path, line=line) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def split_headers(text: str) -> tuple[dict[str, tuple[str, int]], int]:
    """Headers (lower-case name -> (value, line)) and the 0-based index of the body's first line."""
    lines = text.split("\n")
    headers: dict[str, tuple[str, int]] = {}
    i = 0
    while i < len(lines):
        m = _HEADER.match(lines[i])
        if not m:
            break
        headers[m.group(1).lower()] = (m.group(2), i + 1)
        i += 1
    if i < len(lines) and not lines[i].strip():
        i += 1  # the blank line that ends the headers
    return headers, i


def _parse_date(value: str, path: Path, line: int) -> dt.date:
    # Pelican dates: "2013-06-29", "2013-06-29 12:26", "2013-06-29T12:26:00".
    m = re.match(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?\s*$", value)
    try:
        if not m:
            raise ValueError
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise IssueError(f"invalid Date {value!r} (expected YYYY-MM-DD)", path=path, line=line) from None


# ASCII digits only (str.isdigit() also takes "²", which int() refuses), and few enough for the
# campaign ledger's INTEGER column: a longer one failed only when a send recorded its campaign.
_NUMBER = re.compile(r"[0-9]{1,9}")


def _parse_number(headers: dict[str, tuple[str, int]], title: str, path: Path) -> int:
    if "number" in headers:
        value, line = headers["number"]
        if not _NUMBER.fullmatch(value):
            raise IssueError(f"invalid Number {value!r} (expected a whole number, at most 9 digits)",
                             path=path, line=line)
        return int(value)
    m = _NUMBER_IN_TITLE.search(title)
    if not m:
        raise IssueError(f"no Number header and no number at the end of the title {title!r}",
                         path=path, line=headers["title"][1])
    if not _NUMBER.fullmatch(m.group(1)):
        raise IssueError(f"the number at the end of the title {title!r} is over 9 digits: give a Number header",
                         path=path, line=headers["title"][1])
    return int(m.group(1))


def parse_sponsor(value: str, line: int, *, path: Path) -> SponsorInfo | None:
    """``Name | url | logo | text`` -> SponsorInfo; ``none`` -> None (no block)."""
    if value.strip().lower() in NO_SPONSOR:
        return None
    parts = [p.strip() for p in value.split("|")]
    parts += [""] * (4 - len(parts))
    if len(parts) > 4 or not parts[0]:
        raise IssueError("Sponsor must be `Name | https://link | https://logo | text` (or `none`)", path=path, line=line)
    for url in parts[1:3]:
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise IssueError(f"Sponsor URL {url!r} is not an http(s) URL", path=path, line=line)
    return SponsorInfo(*parts[:4])


def parse_issue(path: str | Path) -> Issue:
    """Parse one issue file; IssueError (with file and line) for anything unusable."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise IssueError(f"not a Markdown issue (expected {' or '.join(SUFFIXES)})", path=path)
    text = read_text(path)
    headers, body_start = split_headers(text)
    if not headers:
        raise IssueError("no Pelican headers (expected `Title:`, `Date:` ... at the top)", path=path, line=1)
    _refuse_control_chars(headers, path)
    _refuse_deep_brackets(text, body_start, path)
    for required in ("title", "date"):
        if not headers.get(required, ("", 0))[0]:
            line = headers.get(required, ("", 1))[1]
            raise IssueError(f"missing {required.capitalize()} header", path=path, line=line)
    title = headers["title"][0]
    # A `Sponsor: none` header leaves sponsor None but present in headers (see sponsor_for).
    sponsor = parse_sponsor(*headers["sponsor"], path=path) if "sponsor" in headers else None
    lines = text.split("\n")
    return Issue(
        path=path,
        title=title,
        number=_parse_number(headers, title, path),
        date=_parse_date(headers["date"][0], path, headers["date"][1]),
        category=headers.get("category", ("", 0))[0],
        body="\n".join(lines[body_start:]),
        body_line=body_start + 1,
        subject=headers.get("subject", (None, 0))[0] or None,
        preheader=headers.get("preheader", (None, 0))[0] or None,
        sponsor=sponsor,
        headers={k: v for k, (v, _) in headers.items()},
        header_lines={k: line for k, (_, line) in headers.items()},
    )


def _refuse_deep_brackets(text: str, start: int, path: Path) -> None:
    """Refuse [, ( or < (a tag's start) nested or left open deeper than MAX_BRACKET_DEPTH
    within one paragraph (of the lines from index ``start``)."""
    lines = text.split("\n")
    body = "\n".join(lines[start:])
    pos = 0
    for gap in [*_BLANK_LINES.finditer(body), None]:
        end = gap.start() if gap else len(body)
        paragraph = body[pos:end]
        # Depth never exceeds the number of openers: most paragraphs need no scan.
        if (max(paragraph.count("["), paragraph.count("("), paragraph.count("<")) > MAX_BRACKET_DEPTH
                and _too_deep(paragraph)):
            # Again line by line, for the line to name.
            _scan_brackets(paragraph.split("\n"), start + body.count("\n", 0, pos), path)
        pos = gap.end() if gap else end


def _too_deep(paragraph: str) -> bool:
    """Whether some opener kind goes deeper than MAX_BRACKET_DEPTH (no blank line inside)."""
    square = paren = angle = 0
    for token in _BRACKET.findall(paragraph):
        if token == "[":
            square += 1
            if square > MAX_BRACKET_DEPTH:
                return True
        elif token == "(":
            paren += 1
            if paren > MAX_BRACKET_DEPTH:
                return True
        elif token == "<":
            angle += 1
            if angle > MAX_BRACKET_DEPTH:
                return True
        elif token == "]":
            square -= square > 0
        elif token == ")":
            paren -= paren > 0
        else:
            angle -= angle > 0
    return False


def _scan_brackets(lines: list[str], start: int, path: Path) -> None:
    """The depth of each opener kind through ``lines`` (the file's lines from index ``start``)."""
    depth = dict.fromkeys("[(<", 0)
    for number, line in enumerate(lines, start + 1):
        if not line.strip():
            depth = dict.fromkeys("[(<", 0)  # a blank line ends the paragraph
            continue
        for m in _BRACKET.finditer(line):
            ch = m.group(0)[0]
            if ch in depth:
                depth[ch] += 1
                if depth[ch] > MAX_BRACKET_DEPTH:
                    raise IssueError(f"more than {MAX_BRACKET_DEPTH} nested or unclosed {ch} in one paragraph",
                                     path=path, line=number)
            elif depth[_OPENER[ch]]:
                depth[_OPENER[ch]] -= 1


def _refuse_control_chars(headers: dict[str, tuple[str, int]], path: Path) -> None:
    """A control character in a header would reach the Subject/From lines of every message."""
    for name, (value, line) in headers.items():
        if m := CONTROL_CHARS.search(value):
            raise IssueError(f"control character U+{ord(m.group(0)):04X} in the {name.capitalize()} header",
                             path=path, line=line)
