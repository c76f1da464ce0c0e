"""Rendering: the whole corpus (links, text, size), email structure, content fidelity."""

from __future__ import annotations

import re
import statistics

import pytest
from lxml import html as lxml_html

from mailer.config import with_overrides
from mailer.issue.content import CONTROL_CHARS, HTML_TAGS, markdown_html
from mailer.errors import RenderError
from mailer.issue.parse import parse_issue
from mailer.issue.links import inline_links
from mailer.issue.lint import scan_lines
from mailer.issue.minify import break_long_lines, minify
from mailer.models import UNSUBSCRIBE_PLACEHOLDER
from mailer.issue.render import render_issue
from mailer.issue.sanitize import unsafe_url

KIB = 1024


def content_of(html: str):
    """The injected content element of a rendered email."""
    doc = lxml_html.document_fromstring(html)
    (content,) = doc.find_class("c")
    return doc, content


def hrefs(root) -> set[str]:
    return {a.get("href") for a in root.iter("a") if a.get("href") is not None}


def markdown_links(body: str) -> set[str]:
    """Link targets of the body as Python-Markdown (the website's renderer) sees them,
    less those the sanitizer drops (``hhttps://`` in issue 562: `check` reports it)."""
    found = hrefs(lxml_html.fragment_fromstring(markdown_html(body), create_parent="div"))
    return {url for url in found if not unsafe_url(url)}


# -- the whole corpus ----------------------------------------------------------

def test_corpus_link_targets_equal_markdown(rendered_corpus):
    for path, issue, rendered in rendered_corpus:
        _, content = content_of(rendered.html)
        assert hrefs(content) == markdown_links(issue.body), path


def test_corpus_source_links_survive(rendered_corpus):
    """Independent of Python-Markdown: every [text](url) of the source is a link in the email."""
    for path, issue, rendered in rendered_corpus:
        _, content = content_of(rendered.html)
        targets = hrefs(content)
        for line in scan_lines(issue.body):
            for _, _, _, url, is_image in inline_links(line):
                url = CONTROL_CHARS.sub("", url)  # dropped by the renderer (lint warns)
                if url and not is_image and " " not in url and not unsafe_url(url):
                    assert url in targets, (path, url)


def test_corpus_every_link_in_text(rendered_corpus):
    for path, issue, rendered in rendered_corpus:
        _, content = content_of(rendered.html)
        listed = dict(re.findall(r"^\[(\d+)\] (\S+)$", rendered.text, re.M))
        for url in hrefs(content):
            shown = url.removeprefix("mailto:")
            assert shown in rendered.text, (path, url)
        # every [n] used in the text has its "[n] URL" line
        used = set(re.findall(r"\[(\d+)\](?! http)", rendered.text))
        assert used <= set(listed), (path, used - set(listed))


def test_corpus_size_budget(rendered_corpus):
    sizes = [r.html_bytes for _, _, r in rendered_corpus]
    assert max(sizes) <= 90 * KIB, max(sizes) / KIB
    assert statistics.median(sizes) <= 70 * KIB


def test_corpus_line_lengths(rendered_corpus):
    for path, _, rendered in rendered_corpus:
        assert max(len(line) for line in rendered.html.split("\n")) <= 998, path
        code = {line for pre in content_of(rendered.html)[1].iter("pre")
                for line in pre.text_content().split("\n")}
        for line in rendered.text.split("\n"):
            if len(line) <= 78 or line.strip() in {c.strip() for c in code}:
                continue
            # Only a URL that cannot be broken may stick out, after a short prefix.
            head, _, last = line.rstrip().rpartition(" ")
            assert ("://" in last or "@" in last) and len(head) <= 12, (path, line)


def test_corpus_comments_removed_and_placeholder(rendered_corpus):
    for path, issue, rendered in rendered_corpus:
        _, content = content_of(rendered.html)
        assert not any(isinstance(n, lxml_html.HtmlComment) for n in content.iter()), path
        assert rendered.html.count(UNSUBSCRIBE_PLACEHOLDER) == 1
        assert rendered.text.count(UNSUBSCRIBE_PLACEHOLDER) == 1
        assert rendered.web_url in rendered.html and rendered.web_url in rendered.text
    latest = rendered_corpus[-1][2]
    assert "Dear community contributors" not in latest.html + latest.text


def test_corpus_no_pseudo_tag_vanishes(rendered_corpus):
    """Every `<Thing>` written outside code (not real HTML) is visible text in the email."""
    for path, issue, rendered in rendered_corpus:
        text = " ".join(content_of(rendered.html)[1].text_content().split())
        for line in scan_lines(issue.body):
            for m in re.finditer(r"<(/?[A-Za-z][^<>\s]*)>", re.sub(r"\\([<>])", r"\1", line)):
                name = m.group(1).lstrip("/")
                if (name.islower() and name in HTML_TAGS) or "://" in name or "@" in name:
                    continue
                assert m.group(0) in text, (path, m.group(0))


def test_corpus_pseudo_tags_kept_as_text(rendered_corpus):
    (issue_html,) = [r for _, i, r in rendered_corpus if "only-<platforms>" in i.body]
    _, content = content_of(issue_html.html)
    assert "only-<platforms>" in content.text_content()
    assert "only-<platforms>" in issue_html.text


def test_draft_renders(draft, settings):
    rendered = render_issue(parse_issue(draft), settings)
    assert "Rusty Events" in rendered.text and rendered.html_bytes > 10 * KIB


# -- structure of the email --------------------------------------------------------

@pytest.fixture
def sample(issue_file, settings):
    body = """\
    Intro with [a link](https://example.org/a) and `Vec<T>` code.
    Text with Vec<T>, FromIterator<A>, <impl Log> and only-<platforms> outside code.
    <!-- an editor's note that must not be sent -->

    ## Section

    ```rust
    fn main() {
        let v: Vec<u8> = vec![1, 2];
            println!("{v:?}");
    }
    ```

    > A quote with <small>small</small> text.

    ![](https://example.org/pic.png)

    1. first
    2. second
        * nested [b](https://example.org/b)
    """
    path = issue_file(body)
    return render_issue(parse_issue(path), settings)


def test_email_structure(sample):
    doc, content = content_of(sample.html)
    assert doc.get("lang") == "en"
    assert doc.xpath("//meta[@name='color-scheme']/@content") == ["light dark"]
    layout_tables = [t for t in doc.iter("table") if content not in t.iterancestors()]
    assert layout_tables and all(t.get("role") == "presentation" for t in layout_tables)
    assert all(img.get("alt") is not None for img in doc.iter("img"))
    css = "".join(doc.xpath("//style/text()"))
    dark = css[css.index("prefers-color-scheme:dark"):]
    assert "!important" in dark and ".c a{color:" in dark
    assert "max-width:479px" in css
    # Content styles are inlined (clients without <style> support still get them).
    a = next(content.iter("a"))
    assert "color:#b7410e" in a.get("style").replace(" ", "")
    assert sample.preheader in doc.text_content()


def test_code_block_whitespace_survives(sample):
    _, content = content_of(sample.html)
    (pre,) = content.iter("pre")
    code = pre.text_content()
    assert "fn main() {\n    let v: Vec<u8> = vec![1, 2];\n        println!" in code
    assert "    let v: Vec<u8> = vec![1, 2];" in sample.text


def test_pseudo_tags_and_comments(sample):
    _, content = content_of(sample.html)
    text = content.text_content()
    for word in ("Vec<T>, FromIterator<A>, <impl Log> and only-<platforms>", "Vec<T> code"):
        assert word in text
        assert word in " ".join(sample.text.split())
    assert "editor's note" not in sample.html and "editor's note" not in sample.text
    assert "<small>" in sample.html  # real HTML stays HTML


def test_plain_text_layout(sample):
    text = sample.text
    assert "Section\n=======" in text
    assert "> A quote with small text." in text
    assert "1. first\n2. second\n   * nested b [2]" in text
    assert "a link [1]" in text and "[1] https://example.org/a" in text
    assert text.rstrip().endswith(f"Privacy policy: https://this-week-in-rust.org/pages/privacy-policy.html")
    assert f"Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}" in text


def test_web_url_subject_and_preheader(issue_file, settings):
    r = render_issue(parse_issue(issue_file("* [Some headline news](https://x.example/1)\n")), settings)
    assert r.web_url == "https://this-week-in-rust.org/blog/2025/05/21/this-week-in-rust-600/"
    assert r.subject == "This Week in Rust 600" and r.preheader == "Some headline news"
    r = render_issue(parse_issue(issue_file(Subject="Special 600!", Preheader="Teaser")), settings)
    assert (r.subject, r.preheader) == ("Special 600!", "Teaser")


def test_sponsor_from_settings_and_issue_override(issue_file, settings):
    s = with_overrides(settings, sponsor={"name": "Acme Builds", "url": "https://acme.example",
                                          "text": "Fast CI for Rust."})
    r = render_issue(parse_issue(issue_file()), s)
    assert "Acme Builds" in r.html and 'href="https://acme.example"' in r.html
    assert "This issue is sponsored by Acme Builds: https://acme.example\nFast CI for Rust." in r.text
    r = render_issue(parse_issue(issue_file(Sponsor="Other Co | https://other.example | https://other.example/l.png")), s)
    assert "Other Co" in r.html and "Acme" not in r.html + r.text
    doc, _ = content_of(r.html)
    assert doc.xpath("//img[@src='https://other.example/l.png']/@alt") == ["Other Co"]
    r = render_issue(parse_issue(issue_file(Sponsor="none")), s)
    assert "sponsored" not in r.html + r.text
    r = render_issue(parse_issue(issue_file()), settings)
    assert "sponsored" not in r.html + r.text


def test_footer_lines_wrap_at_78_columns(issue_file, settings):
    """A long sponsor name, line of text or newsletter name wraps; only a URL may stick out."""
    s = with_overrides(settings, sponsor={"name": "The Very Long Sponsor Company Name Incorporated",
                                          "url": "https://sponsor.example.com/landing/page?utm_source=twir",
                                          "text": "We build " + "fast, reliable tooling " * 6},
                       newsletter={"name": "This Week in Rust, the weekly newsletter of the Rust community"})
    text = render_issue(parse_issue(issue_file()), s).text
    footer = text[text.index("\n-- \n"):]
    for line in footer.split("\n"):
        assert len(line) <= 78 or (" " not in line.strip() and "://" in line), line
    flat = " ".join(footer.split())
    assert "sponsored by The Very Long Sponsor Company Name Incorporated: https://sponsor.example.com/" in flat
    assert "You receive This Week in Rust, the weekly newsletter of the Rust community because" in flat


@pytest.mark.parametrize("body", [
    "Before.\n\n</div></td></tr></table>\n\nafter the stray tags\n",
    "Before.\n\n<div><table><tr><td>\n\nafter the stray tags\n",
])
def test_unbalanced_raw_html_stays_inside_the_content(issue_file, settings, body):
    """An author's stray or unclosed tags must not close (or swallow) the layout around the content."""
    html = render_issue(parse_issue(issue_file(body)), settings).html
    doc, content = content_of(html)
    assert "after the stray tags" in content.text_content()
    assert UNSUBSCRIBE_PLACEHOLDER not in lxml_html.tostring(content, encoding="unicode")
    (button,) = [a for a in doc.iter("a") if "Read this issue on the web" in a.text_content()]
    assert not any(el is content for el in button.iterancestors())


def test_timings_and_templates_dir(issue_file, settings, tmp_path):
    timings: dict[str, float] = {}
    render_issue(parse_issue(issue_file()), settings, timings=timings)
    assert set(timings) == {"markdown", "mjml", "inject", "inline", "minify", "text"}
    bad = with_overrides(settings, render={"templates_dir": str(tmp_path / "nowhere")})
    with pytest.raises(RenderError, match="template issue.mjml.j2 not found"):
        render_issue(parse_issue(issue_file()), bad)


def test_broken_mjml_template_is_named_in_the_error(issue_file, settings, tmp_path):
    import shutil

    tdir = tmp_path / "templates"
    shutil.copytree(settings.templates_dir, tdir)
    (tdir / "issue.mjml.j2").write_text("<mjml><mj-body><mj-text>{{ content_marker }}</mj-body></mjml>\n")
    with pytest.raises(RenderError, match="MJML rendering failed") as exc:
        render_issue(parse_issue(issue_file()), with_overrides(settings, render={"templates_dir": str(tdir)}))
    assert exc.value.path == str(tdir / "issue.mjml.j2")


# -- minifier ------------------------------------------------------------------

def test_minify_keeps_pre_and_text():
    page = ("<html><head><style>\n  a  { color : red ; }\n /* note */</style></head><body>\n\n"
            "  <p>Two   words\n\n and  more</p>\n<pre>  keep\n\n   this  </pre></body></html>")
    out = minify(page)
    assert "<pre>  keep\n\n   this  </pre>" in out
    assert "<style>a{color:red}</style>" in out
    assert "<p>Two words\nand more</p>" in out
    before = lxml_html.document_fromstring(page).find(".//p").text_content().split()
    assert lxml_html.document_fromstring(out).find(".//p").text_content().split() == before


def test_break_long_lines_only_at_spaces_outside_attributes():
    line = '<p title="a b c d e f">' + " ".join(f"word{i}" for i in range(400)) + "</p>"
    out = break_long_lines(line, limit=100)
    assert all(len(part) <= 100 for part in out.split("\n"))
    assert out.replace("\n", " ") == line
    assert '<p title="a b c d e f">' in out


# -- property: generic-looking text never vanishes ------------------------------------

from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

from mailer.issue.content import content_html  # noqa: E402

_word = st.from_regex(r"[A-Z][a-z0-9_]{0,5}", fullmatch=True)
_sep = st.sampled_from([" ", "<", ">", ", ", "::", " <", "> ", "<&", "-<"])


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_word, _sep), min_size=1, max_size=12))
def test_rust_generics_in_prose_survive(parts):
    text = "".join(w + s for w, s in parts).strip()
    fragment = lxml_html.fragment_fromstring(content_html(text), create_parent="div")
    assert " ".join(fragment.text_content().split()) == " ".join(text.split())


def test_first_body_line_that_looks_like_a_header_stays():
    assert "Update: the survey is open" in content_html("Update: the survey is open.\n\nMore.\n")


def test_text_wrapping_never_breaks_urls():
    from mailer.issue.textpart import html_to_text

    url = "https://example.org/" + "a-very-long-path-segment/" * 4
    body = ("Words " * 20 + f"<{url}> and a [named link]({url}?x=1) and <editors@example.org>. " + "More " * 20
            + "\n\n* item with " + "text " * 30 + "\n")
    fragment = lxml_html.fragment_fromstring(content_html(body), create_parent="div")
    text = html_to_text(fragment)
    lines = text.split("\n")
    assert url in lines  # the bare URL got a line of its own, unbroken
    assert f"[1] {url}?x=1" in lines
    assert "editors@example.org" in text and "mailto:" not in text
    assert all(len(line) <= 78 for line in lines if "://" not in line)
    item = [line for line in lines if line.startswith(("* item", "  text"))]
    assert len(item) > 1 and all(line.startswith("  ") for line in item[1:])
