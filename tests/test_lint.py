"""`check`: draft errors, each warning, no false errors on the published corpus."""

from __future__ import annotations

from mailer.config import with_overrides
from mailer.issue.lint import check_issue, mojibake
from mailer.models import Severity


def codes(findings, severity=None):
    return [f.code for f in findings if severity is None or f.severity == severity]


def by_code(findings, code):
    return [f for f in findings if f.code == code]


def test_draft_fails_with_placeholders_and_mojibake(draft, settings):
    findings = check_issue(draft, settings)
    errors = [f for f in findings if f.severity == Severity.ERROR]
    lines = draft.read_text(encoding="utf-8").split("\n")
    placeholders = by_code(errors, "placeholder")
    assert {f.message.split()[2] for f in placeholders} == {"INSERT_LINK_HERE", "REDDIT_LINK_HERE"}
    for f in placeholders + by_code(errors, "mojibake"):
        assert f.path == str(draft)
        assert any(w in lines[f.line - 1] for w in ("_HERE", "ü¶Ä", "√", "‚Ä")), f
    crab = [f for f in by_code(errors, "mojibake") if "🦀" in f.message]
    assert crab and "ü¶Ä" in lines[crab[0].line - 1]
    assert any("'–'" in f.message or "–" in f.message for f in by_code(errors, "mojibake"))
    assert "empty-section" in codes(findings, Severity.WARNING)
    assert "brackets" in codes(findings, Severity.WARNING)  # ...bT2SeYXpQm8))
    assert str(placeholders[0]).startswith(f"{draft}:{placeholders[0].line}: error: draft placeholder")


def test_published_corpus_has_no_false_errors(corpus, settings):
    errors = {}
    for path in corpus:
        found = [f for f in check_issue(path, settings) if f.severity == Severity.ERROR]
        if found:
            errors[path.name] = found
    retired = settings.check.retired_links[0]
    real = {}
    for name, found in errors.items():
        text = (corpus[0].parent / name).read_text(encoding="utf-8").split("\n")
        for f in found:
            if f.code == "retired-link":  # the old Mailchimp "Subscribe here" link
                assert retired in text[f.line - 1], f
            else:
                real.setdefault(name, []).append((f.line, f.code))
    # Issue 570 really was published with its Reddit placeholder, issue 562 with "hhttps://".
    assert real == {"2024-08-28-this-week-in-rust.md": [(385, "scheme-typo")],
                    "2024-10-23-this-week-in-rust.md": [(414, "placeholder")]}
    # Every issue since 554 (2024-07) carries the Mailchimp link once.
    retired_in = sorted(n for n, found in errors.items() if any(f.code == "retired-link" for f in found))
    assert len(retired_in) == 14 and retired_in[0].startswith("2024-07-03")


def test_each_warning_and_error(issue_file, settings):
    body = """\
    Intro [plain](http://insecure.example/x) and [group](https://group.example/) twice:
    * [Story](https://dup.example/) by [group](https://group.example/)

    ## Empty

    ## Full

    * [video] [Story](https://dup.example/)

    ![](https://img.example/no-alt.png) <img src="https://img.example/raw.png">
    [video](https://youtube.example/watch?v=abc)) and [ok (paren)](https://en.example/Rust_(lang))
    [nothing]() and issue $twir_issue_number
    `http://in-code.example` is fine.
    <!-- [x]() REDDIT_LINK_HERE in a comment is fine -->
    Caf\u00c3\u00a9 au lait.
    """
    path = issue_file(body)
    findings = check_issue(path, settings)
    line = {f.code + ":" + str(f.line): f for f in findings}
    first = 6  # the body starts on line 6 of the file
    assert f"http:{first}" in line and "insecure.example" in line[f"http:{first}"].message
    assert f"duplicate:{first + 1}" not in line  # a group/author page linked twice is fine
    assert f"empty-section:{first + 3}" in line and "Empty" in line[f"empty-section:{first + 3}"].message
    assert f"empty-section:{first + 5}" not in line
    assert line[f"duplicate:{first + 7}"].message == f"duplicate link https://dup.example/ (also on line {first + 1})"
    assert len(by_code(findings, "image-alt")) == 2
    brackets = by_code(findings, "brackets")
    assert [f.line for f in brackets] == [first + 10] and "youtube" in brackets[0].message
    assert f"empty-link:{first + 11}" in line and line[f"empty-link:{first + 11}"].severity == Severity.ERROR
    assert f"placeholder:{first + 11}" in line
    assert not any(f.line == first + 12 for f in findings)  # code span
    assert not any(f.line == first + 13 for f in findings)  # comment
    assert line[f"mojibake:{first + 14}"].message.endswith("should probably be 'é'")
    assert sorted(f.line or 0 for f in findings) == [f.line or 0 for f in findings]


def test_size_budget_is_configurable(issue_file, settings):
    path = issue_file("Hello.\n")
    warn = with_overrides(settings, check={"html_warning_kib": 1, "html_error_kib": 500})
    assert [(f.severity, f.code) for f in check_issue(path, warn) if f.code == "size"] == [(Severity.WARNING, "size")]
    fail = with_overrides(settings, check={"html_warning_kib": 1, "html_error_kib": 2})
    (size,) = by_code(check_issue(path, fail), "size")
    assert size.severity == Severity.ERROR and "over the 2 KiB limit" in size.message
    assert not by_code(check_issue(path, settings), "size")


def test_unparseable_issue_is_a_finding_not_an_exception(tmp_path, issue_file, settings):
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"Title: This Week in Rust 1\nDate: 2020-01-01\n\n\xff\n")
    (f,) = check_issue(bad, settings)
    assert (f.severity, f.line, f.code) == (Severity.ERROR, 4, "parse")
    (f,) = check_issue(tmp_path / "missing.md", settings)
    assert "no such file" in f.message
    nodate = check_issue(issue_file(Date=None), settings)
    assert [f.code for f in nodate] == ["parse"] and "missing Date" in nodate[0].message
    nocat = check_issue(issue_file(Category=None), settings)
    assert "metadata" in codes(nocat, Severity.ERROR)


def test_mojibake_detector():
    assert mojibake("Rusty Events ü¶Ä") == "Rusty Events 🦀"
    assert mojibake("Rusty Events \uf8ffü¶Ä") == "Rusty Events 🦀"
    assert mojibake("2022 ‚Äì Online") == "2022 – Online"
    for fine in ("Grüße, Zoë — “quoted” ça va 🦀 日本語", "Ünïcödé ¶ Ä", "plain ascii", "Rust©®™ trademark"):
        assert mojibake(fine) is None, fine


def test_raw_html_link_with_empty_target_is_an_error(issue_file, settings):
    path = issue_file('Discuss <a href="">on r/rust</a> or <a href="https://ok.example/">here</a>.\n')
    (f,) = [f for f in check_issue(path, settings) if f.severity == Severity.ERROR]
    assert (f.code, f.line) == ("empty-link", 6) and "empty target" in f.message
