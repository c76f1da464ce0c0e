"""`check` as the editor's gatekeeper (issue 10): link defects, TWIR's draft gaps, finding codes
and silencing, unsafe markup, unsendable content. Fixtures are real lines from published issues
(quoted with their issue) or written in the same shape."""

from __future__ import annotations

import shutil

import pytest

from mailer.config import with_overrides
from mailer.issue.lint import check_issue
from mailer.issue.parse import MAX_ISSUE_BYTES, parse_issue
from mailer.issue.render import render_issue
from mailer.models import Severity
from mailer.sending.preflight import check_file

FIRST = 6  # issue_file(): the body starts on line 6


def found(findings, code=None):
    return [(f.line, f.severity, f.code) for f in findings if code is None or f.code == code]


def by_line(findings):
    return {(f.line, f.code): f for f in findings}


# -- links -----------------------------------------------------------------------

@pytest.mark.parametrize("line, bad", [
    # Issue 562, line 385, as published:
    ("    * [**Boulder Elixir Meetup**](hhttps://www.meetup.com/boulder-elixir/events/302991078/)", "hhttps://"),
    ("* [Rust 1.80](ttps://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html)", "ttps://"),
    ("* [Rust 1.80](htps://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html)", "htps://"),
    ("* [Rust 1.80](http//blog.rust-lang.org/2024/07/25/Rust-1.80.0.html)", "http//"),
    ("* [Rust 1.80](https//blog.rust-lang.org/2024/07/25/Rust-1.80.0.html)", "https//"),
])
def test_misspelled_schemes_are_errors(issue_file, settings, line, bad):
    (f,) = [f for f in check_issue(issue_file(line + "\n"), settings) if f.severity == Severity.ERROR]
    assert (f.line, f.code) == (FIRST, "scheme-typo") and repr(bad) in f.message


def test_links_without_a_scheme_are_dead_in_an_email(issue_file, settings):
    path = issue_file("""\
    * [Rust in Production](www.rust-in-production.example/episode-1)
    * [Zed decoded](zed.dev/blog/zed-decoded-rope-sumtree)
    * 2024-10-09 | Vienna, AT | [Euro Rust](eurorust)
    * [fine](https://eurorust.eu/) [also fine](mailto:editors@example.org) [footnote](#fn:1)

    [^1]: A footnote is not a link reference.
    """)
    errors = [f for f in check_issue(path, settings) if f.severity == Severity.ERROR]
    assert found(errors) == [(FIRST + n, Severity.ERROR, "relative-link") for n in range(3)]
    assert "(add https://)" in errors[0].message and "(add https://)" in errors[1].message
    assert "'eurorust' has no scheme" in errors[2].message


def test_space_between_bracket_and_paren_is_an_error(issue_file, settings):
    path = issue_file("""\
    * 2024-05-28 - 2024-05-30 | Berlin, DE | [Oxidize Conference] (https://oxidizeconf.com/)
    * [video] [Title](https://youtube.example/v) and [a reference] [ref] are fine.

    [ref]: https://ref.example/
    """)
    (f,) = [f for f in check_issue(path, settings) if f.severity == Severity.ERROR]
    assert (f.line, f.code) == (FIRST, "link-space")
    assert "[Oxidize Conference] (https://oxidizeconf.com/)" in f.message


def test_url_broken_across_lines_warns_and_the_email_joins_it(issue_file, settings):
    path = issue_file("""\
    * [Rust Hack and Learn](https://www.youtube.com/watch?v=wRZGA1zY8ZI&list=PL8Q1w7Ff68DBPe&start=17cbdfd0
    ecb8f00d) in Berlin
    """)
    (f,) = check_issue(path, settings)
    assert (f.line, f.severity, f.code) == (FIRST, Severity.WARNING, "broken-url")
    html = render_issue(parse_issue(path), settings).html
    assert "start=17cbdfd0ecb8f00d" in html and "%0A" not in html and "%0a" not in html


def test_paren_ending_a_line_is_not_an_empty_target_and_labels_print_on_one_line(issue_file, settings):
    path = issue_file("""\
    * [Announcing the Rust Foundation's 2024 Fellows](
    https://foundation.rust-lang.org/news/announcing-the-2024-fellows/)
    * [An empty
    target]() here
    """)
    findings = check_issue(path, settings)
    assert found(findings) == [(FIRST + 2, Severity.ERROR, "empty-link")]
    assert "\n" not in str(findings[0]) and "[An empty target]" in findings[0].message
    html = render_issue(parse_issue(path), settings).html
    assert 'href="https://foundation.rust-lang.org/news/announcing-the-2024-fellows/"' in html


def test_retired_links_are_a_setting(issue_file, settings):
    # Issue 658, line 18, as published: the Mailchimp form replaced by the new subscribe page.
    line = ("Want TWIR in your inbox? [Subscribe here](https://this-week-in-rust.us11.list-manage.com/"
            "subscribe?u=fd84c1c757e02889a9b08d289&id=0ed8b72485).\n")
    path = issue_file(line)
    (f,) = check_issue(path, settings)
    assert (f.line, f.severity, f.code) == (FIRST, Severity.ERROR, "retired-link")
    assert check_issue(path, with_overrides(settings, check={"retired_links": []})) == []
    moved = with_overrides(settings, check={"retired_links": ["https://old.example/"]})
    assert found(check_issue(issue_file("[x](https://old.example/a)\n"), moved)) == [
        (FIRST, Severity.ERROR, "retired-link")]


def test_control_character_in_a_url_is_not_a_missing_scheme(corpus, settings):
    # Issue 426, line 200: a \x02 before "https://" (dropped by the renderer, warned as "control").
    path = next(p for p in corpus if p.name == "2022-01-19-this-week-in-rust.md")
    findings = check_issue(path, settings)
    assert found([f for f in findings if f.line == 200]) == [(200, Severity.WARNING, "control")]


# -- TWIR's own draft gaps ---------------------------------------------------------

def test_number_disagreeing_with_title_and_date_with_file_name(issue_file, settings):
    path = issue_file("Hello.\n", Title="This Week in Rust 601", Number="600", Date="2025-05-28")
    findings = check_issue(path, settings)
    number, date = by_line(findings)[(2, "number-mismatch")], by_line(findings)[(3, "date-mismatch")]
    assert number.severity == Severity.ERROR and "Number: 600 disagrees with the title" in number.message
    assert date.severity == Severity.WARNING and "file name's 2025-05-21" in date.message


def test_published_date_mismatch_in_the_corpus(corpus, settings):
    path = next(p for p in corpus if p.name == "2020-09-02-this-week-in-rust.md")  # Date: 2020-09-04
    assert found(check_issue(path, settings), "date-mismatch") == [(3, Severity.WARNING, "date-mismatch")]


def test_comment_only_slots_in_the_draft(draft, settings):
    findings = check_issue(draft, settings)
    lines = draft.read_text(encoding="utf-8").split("\n")
    slots = [f for f in findings if f.code == "unfilled"]
    assert [lines[f.line - 1] for f in slots] == [
        "<!-- COTW goes here -->", lines[62], "<!-- Rust updates go here -->", "<!-- Perf results go here -->",
        "<!-- Pre-Stabilization RFCs go here -->", "<!-- RFC and FCP sections go here -->", "<!-- QOTW goes here -->"]
    assert lines[62].startswith("<!-- CFPs go here")
    assert "'Crate of the Week' is not filled in" in slots[0].message


def test_filled_slot_and_empty_slot(issue_file, settings):
    # Issue 658, "CFP - Projects" (filled) and "CFP - Events" (left empty when published).
    path = issue_file("""\
    ### CFP - Projects

    <!-- CFPs go here, use this format: * [project name - title of issue](URL to issue) -->
    <!-- * [ - ]() -->
    * [multicalc - good first issues](https://github.com/kmolan/multicalc-rust/issues)

    ### CFP - Events

    <!-- CFPs go here, use this format: * [**event name**](URL to CFP)| Date CFP closes in YYYY-MM-DD -->
    <!-- or if none - *No Calls for papers or presentations were submitted this week.* -->

    If you are an event organizer hoping to expand the reach of your event, please submit a link.

    ### Rust Compiler Performance Triage

    <!-- Perf results go here -->

    <!--
    ### [Approved Major Change Proposals (MCP)](https://forge.rust-lang.org/compiler/mcp.html)
    <!~~ MCPs which have been approved or rejected this week go here ~~>
    -->

    ### CFP - Events

    <!-- CFPs go here, use this format: * [**event name**](URL to CFP)| Date CFP closes in YYYY-MM-DD -->

    * [**EuroRust**](https://sessionize.com/eurorust-2026/) | CFP open until 2026-04-27 | Barcelona, Spain
    """)
    findings = check_issue(path, settings)
    # Filled after a blank line (issue 642's "CFP - Events") is filled.
    assert found(findings) == [(FIRST + 8, Severity.WARNING, "unfilled"), (FIRST + 15, Severity.WARNING, "unfilled")]


def test_events_outside_the_issue_range(draft, settings, issue_file):
    # The draft of issue 467 kept last week's events (2022-10-26 ... 2022-11-01).
    stale = found(check_issue(draft, settings), "event-date")
    lines = draft.read_text(encoding="utf-8").split("\n")
    assert len(stale) == 11 and all(lines[n - 1].lstrip("* ")[:10] < "2022-11-02" for n, *_ in stale)
    path = issue_file("""\
    ## Upcoming Events

    Rusty Events between 2025-07-30 - 2025-08-27 🦀

    ### Virtual
    * 2025-07-29 | Virtual (Dallas, TX, US) | [Dallas Rust](https://www.meetup.com/dallasrust)
    * 2025-07-30 | Virtual (Dallas, TX, US) | [Dallas Rust](https://www.meetup.com/dallasrust)
    * 2025-07-28 - 2025-07-31 | Virtual | [RustLab](https://rustlab.example/)
    * 2025-09-02 - 2025-09-05 | Hybrid (Seattle, WA, US) | [RustConf](https://rustconf.com/)
    """)
    assert [n - FIRST for n, *_ in found(check_issue(path, settings), "event-date")] == [5, 8]


def test_virtual_and_region_listing_is_not_a_duplicate(issue_file, settings):
    # Issue 658: Vancouver's hybrid meetup under "Virtual" and under "North America".
    path = issue_file("""\
    ## Upcoming Events

    Rusty Events between 2026-07-01 - 2026-07-29 🦀

    ### Virtual
    * 2026-07-15 | Hybrid (Vancouver, BC, CA) | [Vancouver Rust](https://www.meetup.com/vancouver-rust)
        * [**Jiff**](https://www.meetup.com/vancouver-rust/events/314233743/)

    ### North America
    * 2026-07-15 | Hybrid (Vancouver, BC, CA) | [Vancouver Rust](https://www.meetup.com/vancouver-rust)
        * [**Jiff**](https://www.meetup.com/vancouver-rust/events/314233743/)
    * 2026-07-16 | Seattle, WA, US | [Seattle Rust User Group](https://www.meetup.com/join-srug)
        * [**Jiff**](https://www.meetup.com/vancouver-rust/events/314233743/)
    """)
    assert found(check_issue(path, settings)) == [(FIRST + 12, Severity.WARNING, "duplicate")]


def test_recent_issues_lose_the_virtual_region_noise(corpus, settings):
    issue = next(p for p in corpus if p.name == "2026-07-01-this-week-in-rust.md")
    dups = found(check_issue(issue, settings), "duplicate")
    assert dups == [(243, Severity.WARNING, "duplicate")]  # the RFC in two FCP lists; was 3 with the meetups


# -- codes, --ignore, silencing one finding -------------------------------------------

def test_codes_are_shown_and_one_finding_can_be_silenced(issue_file, settings, run_cli):
    path = issue_file("""\
    * [Story](https://dup.example/)
    * [Story again](https://dup.example/) <!-- check: ignore duplicate -->
    <!-- check: ignore http -->
    * [Old site](http://old.example/)
    * [Story](https://dup.example/) via [Other](http://other.example/)
    """)
    findings = check_issue(path, settings)
    assert found(findings) == [(FIRST + 4, Severity.WARNING, "duplicate"), (FIRST + 4, Severity.WARNING, "http")]
    r = run_cli("check", str(path))
    assert r.code == 0 and f"{path}:{FIRST + 4}: warning: insecure http:// link http://other.example/ [http]" in r.out
    r = run_cli("check", "--ignore", "http,duplicate", str(path))
    assert r.out == "" and "0 error(s), 0 warning(s)" in r.err
    assert check_issue(path, settings, ignore=["duplicate"]) == [findings[1]]


# -- unsafe and unsendable ------------------------------------------------------------

def test_unsafe_markup_is_removed_by_the_renderer_and_reported(issue_file, settings):
    path = issue_file("""\
    <img src="https://img.example/crab.png" alt="crab" onerror="alert(1)">
    <a href="javascript:alert(document.cookie)" onclick="steal()">Rust 2024</a>
    * [Playground](javascript:alert(1)) and [data](data:text/html;base64,PHNjcmlwdD4=)
    <a href=" vbscript:msgbox(1)">old</a> <div style="color: red" onmouseover="x()">hi</div>
    <img alt="pixel" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
    """)
    findings = check_issue(path, settings)
    assert {(line, code) for line, _, code in found(findings) if code.startswith("unsafe")} == {
        (FIRST, "unsafe-html"), (FIRST + 1, "unsafe-html"), (FIRST + 1, "unsafe-url"), (FIRST + 2, "unsafe-url"),
        (FIRST + 3, "unsafe-html"), (FIRST + 3, "unsafe-url"), (FIRST + 4, "unsafe-html")}
    assert any("onerror= attribute on <img>" in f.message for f in findings)
    assert any("javascript: URL" in f.message for f in findings)
    html = render_issue(parse_issue(path), settings).html.lower()
    for bad in ("onerror", "onclick", "onmouseover", "javascript:", "vbscript:", "data:"):
        assert bad not in html, bad
    assert 'src="https://img.example/crab.png"' in html and "rust 2024" in html


def test_control_characters_in_title_or_subject_name_the_header(issue_file, settings):
    for header, value in (("Title", "This Week in Rust 600\x7f"), ("Subject", "Rust \x1b[31m news")):
        path = issue_file("Hello.\n", **{header: value})
        (f,) = check_issue(path, settings)
        line = 1 if header == "Title" else 5
        assert (f.line, f.severity, f.code) == (line, Severity.ERROR, "parse")
        assert f"in the {header} header" in f.message and "template" not in f.message


def test_issue_that_cannot_be_sent_fails_check_with_file_and_cause(issue_file, settings, tmp_path, run_cli):
    deep = issue_file("> " * 250 + "nested\n")
    r = run_cli("check", str(deep))
    assert r.code == 1
    assert f"{deep}: error: cannot render: content is nested 251 elements deep" in r.out
    # A layout that loses the unsubscribe link renders, but its message cannot be built.
    templates = tmp_path / "templates"
    shutil.copytree(settings.templates_dir, templates)
    mjml = templates / "issue.mjml.j2"
    mjml.write_text(mjml.read_text(encoding="utf-8").replace("{{ unsubscribe_url }}", "#"), encoding="utf-8")
    broken = with_overrides(settings, render={"templates_dir": str(templates)})
    ok = issue_file("Hello.\n")
    assert not [f for f in check_issue(ok, broken) if f.severity == Severity.ERROR]
    (f,) = [f for f in check_file(ok, broken) if f.severity == Severity.ERROR]
    assert f.code == "message" and "unsubscribe placeholder" in f.message


def test_oversized_file_is_refused_before_parsing(issue_file, settings):
    path = issue_file("Hello.\n" + "x" * MAX_ISSUE_BYTES)
    (f,) = check_issue(path, settings)
    assert f.code == "parse" and "over the 512 KiB limit" in f.message


@pytest.mark.parametrize("body", [
    "[" * 50000 + "x" + "]" * 50000 + "(https://a.example/)\n",
    ("[a" * 20000 + "\n") * 5,
    "[a](" * 100000 + "\n",
    "<a href=" * 50000 + "\n",
    "`" * 100000 + "\n",
    "> " * 20000 + "deep\n",
    "".join("    " * i + "* item\n" for i in range(300)),
])
def test_deeply_nested_input_never_hangs(issue_file, body, run_cli):
    path = issue_file(body)
    # A subprocess with a deadline: a hang fails the test instead of stalling the run.
    r = run_cli("check", str(path), timeout=90)
    assert r.code == 1 and "Traceback" not in r.err
    assert ": error: " in r.out
