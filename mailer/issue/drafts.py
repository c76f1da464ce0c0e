"""The gaps a TWIR draft typically has, found from the issue's own conventions.

- ``Number:`` against the number in ``Title:``, ``Date:`` against the file name;
- a "... goes here" comment of the template with nothing written after it
  (the next line is blank or a heading, and no list item follows in its section);
- events dated outside the issue's "Rusty Events between A - B" range;
- the outline of the issue, so that a meetup listed under "Virtual" and again
  under its region is not taken for a duplicate link.

Each check yields ``(line index or None, severity, code, message)``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from mailer.issue.content import HTML_COMMENT
from mailer.models import Issue, Severity

_HEADING = re.compile(r"^(#{1,6})\s+(\S.*?)\s*#*\s*$")
_EVENTS = re.compile(r"\bupcoming events\b", re.I)
_RANGE = re.compile(r"Rusty Events between (\d{4}-\d{2}-\d{2}) - (\d{4}-\d{2}-\d{2})")
_EVENT = re.compile(r"^\s*[*+-]\s+(\d{4}-\d{2}-\d{2})(?:\s*-\s*(\d{4}-\d{2}-\d{2}))?\s*\|")
_FILE_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})\b")
_TITLE_NUMBER = re.compile(r"(\d+)\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[*+-]|\d+\.)\s+\S")
# The template's slots: "<!-- COTW goes here -->", "<!-- CFPs go here, use this format: ... -->".
_SLOT = re.compile(r"\bgo(?:es)? here\b", re.I)


@dataclass(frozen=True)
class Heading:
    index: int
    level: int
    title: str


class Outline:
    """The headings of a body (scanned lines) and which section a line is in."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.headings = [Heading(i, len(m.group(1)), m.group(2)) for i, line in enumerate(lines)
                         if (m := _HEADING.match(line))]

    def section(self, index: int) -> Heading | None:
        found = None
        for h in self.headings:
            if h.index > index:
                break
            found = h
        return found

    def end(self, heading: Heading) -> int:
        """Index of the first line after the section (sub-sections included)."""
        for h in self.headings:
            if h.index > heading.index and h.level <= heading.level:
                return h.index
        return len(self.lines)

    def ancestors(self, heading: Heading) -> list[Heading]:
        """The headings whose sections contain this one, innermost first."""
        found, level = [], heading.level
        for h in reversed(self.headings[:self.headings.index(heading)]):
            if h.level < level:
                found.append(h)
                level = h.level
        return found

    def events(self) -> Heading | None:
        return next((h for h in self.headings if _EVENTS.search(h.title)), None)

    def duplicate_scope(self, index: int) -> int | None:
        """Links are compared within this scope: the region heading inside "Upcoming
        Events" (the same meetup under "Virtual" and under its region is not a
        duplicate), else the whole issue (None)."""
        events = self.events()
        if events is None or not events.index < index < self.end(events):
            return None
        section = self.section(index)
        return section.index if section else None


def metadata(issue: Issue) -> list[tuple]:
    found = []
    title_number = _TITLE_NUMBER.search(issue.title)
    if "number" in issue.headers and title_number and int(title_number.group(1)) != issue.number:
        found.append((_header(issue, "number"), Severity.ERROR, "number-mismatch",
                      f"Number: {issue.number} disagrees with the title {issue.title!r}"))
    m = _FILE_DATE.match(issue.path.name)
    if m:
        try:
            file_date = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            file_date = None
        if file_date and file_date != issue.date:
            found.append((_header(issue, "date"), Severity.WARNING, "date-mismatch",
                          f"Date: {issue.date} disagrees with the file name's {file_date} "
                          "(the web link uses Date:)"))
    return found


def _header(issue: Issue, name: str) -> int | None:
    """The header's line as a body index (negative: headers come before the body)."""
    line = issue.header_lines.get(name)
    return line - issue.body_line if line else None


def unfilled_slots(body: str, lines: list[str], outline: Outline) -> list[tuple]:
    """A template comment "... goes here" with nothing written after it in its section."""
    found = []
    raw = body.split("\n")
    for m in HTML_COMMENT.finditer(body):
        inner = m.group(0).removeprefix("<!--").strip()
        if not _SLOT.search(inner.split("\n", 1)[0]):
            continue  # a slot says so first; a commented-out block that mentions one is not a slot
        start = body.count("\n", 0, m.start())
        after = body.count("\n", 0, m.end())
        if lines[after].strip():
            continue  # text on the comment's own last line
        i = after + 1
        while i < len(lines) and not lines[i].strip() and raw[i].strip():
            i += 1  # a line the scan blanked: more comments of the same slot
        if i < len(lines) and lines[i].strip() and not _HEADING.match(lines[i]):
            continue
        section = outline.section(start)
        stop = outline.end(section) if section else len(lines)
        if any(_LIST_ITEM.match(line) for line in lines[i:stop]):
            continue  # filled further down, in a sub-section ("Calls for Testing" > "Rustup")
        where = f"section {section.title!r}" if section else "the issue"
        found.append((start, Severity.WARNING, "unfilled",
                      f"{where} is not filled in: nothing after {_comment(m.group(0))}"))
    return found


def _comment(text: str, n: int = 48) -> str:
    inner = " ".join(text.removeprefix("<!--").removesuffix("-->").split())
    return "<!-- " + (inner if len(inner) <= n else inner[: n - 1] + "…") + " -->"


def event_dates(lines: list[str], outline: Outline) -> list[tuple]:
    """Events dated outside "Rusty Events between A - B" (a stale one copied from last week)."""
    events = outline.events()
    if events is None:
        return []
    stop = outline.end(events)
    span = None
    found = []
    for i in range(events.index + 1, stop):
        if span is None and (m := _RANGE.search(lines[i])):
            span = (_date(m.group(1)), _date(m.group(2)))
            continue
        m = _EVENT.match(lines[i])
        if not (m and span and all(span)):
            continue
        first = _date(m.group(1))
        last = _date(m.group(2)) if m.group(2) else first
        if first and last and (last < span[0] or first > span[1]):
            found.append((i, Severity.WARNING, "event-date",
                          f"event dated {m.group(1)} is outside this issue's range {span[0]} - {span[1]}"))
    return found


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None
