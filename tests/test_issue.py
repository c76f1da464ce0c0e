"""Parsing issue files: Pelican headers, overrides, and clear errors for bad files."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest

from mailer.errors import IssueError
from mailer.issue.parse import parse_issue
from mailer.models import SponsorInfo


def test_corpus_headers_parse(corpus):
    for path in corpus:
        issue = parse_issue(path)
        assert issue.title.startswith("This Week in Rust")
        # Older issues have no Number header: it comes from the title.
        assert issue.title.endswith(str(issue.number)), path
        assert issue.date.year >= 2013
        assert not issue.body.startswith(("Title:", "Date:")), path


def test_old_issue_number_from_title_and_markdown_suffix(corpus):
    old = next(p for p in corpus if p.suffix == ".markdown")
    issue = parse_issue(old)
    assert "number" not in issue.headers
    assert issue.number == 4 and issue.date == dt.date(2013, 6, 29)  # "2013-06-29 12:26"


def test_fields_and_body_line(issue_file):
    path = issue_file("First line.\n\nSecond.\n", Subject="Custom subject", Preheader="Short teaser")
    issue = parse_issue(path)
    assert (issue.number, issue.date, issue.category) == (600, dt.date(2025, 5, 21), "This Week in Rust")
    assert issue.subject == "Custom subject" and issue.preheader == "Short teaser"
    assert issue.body.startswith("First line.")
    lines = path.read_text().split("\n")
    assert lines[issue.body_line - 1] == "First line."
    assert issue.stem == "2025-05-21-this-week-in-rust"


def test_crlf_and_bom(tmp_path):
    path = tmp_path / "x.md"
    path.write_bytes(b"\xef\xbb\xbfTitle: This Week in Rust 9\r\nDate: 2014-01-02\r\n\r\nBody\r\n")
    issue = parse_issue(path)
    assert (issue.title, issue.number, issue.body) == ("This Week in Rust 9", 9, "Body\n")


@pytest.mark.parametrize("value,expected", [
    ("Acme | https://acme.example", SponsorInfo("Acme", "https://acme.example")),
    ("Acme | https://acme.example | https://acme.example/logo.png | Fast builds",
     SponsorInfo("Acme", "https://acme.example", "https://acme.example/logo.png", "Fast builds")),
    ("none", None),
])
def test_sponsor_header(issue_file, value, expected):
    issue = parse_issue(issue_file(Sponsor=value))
    assert issue.sponsor == expected
    assert "sponsor" in issue.headers


@pytest.mark.parametrize("headers,message,line", [
    ({"Title": None}, "missing Title header", 1),
    ({"Date": None}, "missing Date header", 1),
    ({"Date": "21/05/2025"}, "invalid Date '21/05/2025'", 3),
    ({"Number": "six"}, "invalid Number 'six'", 2),
    ({"Number": None, "Title": "Weekly news"}, "no Number header", 1),
    # "²" passed str.isdigit() and crashed int(); a huge number failed only when a send recorded it.
    ({"Number": "²"}, "invalid Number '²' (expected a whole number, at most 9 digits)", 2),
    ({"Number": "9" * 23}, "invalid Number '999", 2),
    ({"Number": None, "Title": "This Week in Rust " + "9" * 20}, "is over 9 digits: give a Number header", 1),
    ({"Sponsor": "Acme | ftp://acme"}, "Sponsor URL 'ftp://acme'", 5),
])
def test_bad_headers_name_file_and_line(issue_file, headers, message, line):
    path = issue_file(**headers)
    with pytest.raises(IssueError) as exc:
        parse_issue(path)
    assert message in exc.value.message
    assert exc.value.path == str(path)
    assert exc.value.line == line
    assert str(exc.value).startswith(f"{path}:{line}: ")


def test_non_utf8_names_line(tmp_path):
    path = tmp_path / "latin1.md"
    path.write_bytes(b"Title: This Week in Rust 5\nDate: 2014-01-02\n\nok\nCaf\xe9\n")
    with pytest.raises(IssueError) as exc:
        parse_issue(path)
    assert exc.value.line == 5 and "not valid UTF-8 (byte 0xe9)" in exc.value.message


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.md", "no such file"),
    (lambda d: (d / "dir.md").mkdir() or d / "dir.md", "is a directory"),
    (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "not a Markdown issue"),
    (lambda d: (d / "plain.md").write_text("# Just a heading\n") and d / "plain.md", "no Pelican headers"),
])
def test_unusable_files(tmp_path, make, message):
    with pytest.raises(IssueError, match=message):
        parse_issue(make(tmp_path))


def test_unreadable_file(tmp_path):
    (tmp_path / "file.md").write_text("x")
    with pytest.raises(IssueError, match="cannot read: Not a directory"):
        parse_issue(tmp_path / "file.md" / "issue.md")


def test_fifo_is_an_error_not_a_hang(tmp_path):
    """A named pipe (or device) ending in .md must not block `render`/`check` forever."""
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    result = {}

    def parse():
        try:
            parse_issue(fifo)
        except IssueError as exc:
            result["error"] = exc

    worker = threading.Thread(target=parse, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # blocked opening the pipe: give it a writer and EOF, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("parse_issue blocked on a named pipe")
    assert "not a regular file" in result["error"].message
