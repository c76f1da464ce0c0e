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
from mailer.issue.minify import minify
from mailer.models import UNSUBSCRIBE_PLACEHOLDER
from mailer.issue.render import render_issue
from mailer.issue.sanitize import unsafe_url
from mailer.sending.message import MessageTemplate

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


def test_corpus_line_lengths(rendered_corpus, settings):
    for path, _, rendered in rendered_corpus:
        # The HTML's own lines may be any length (corpus: up to ~6,000 characters): on the wire
        # both parts are quoted-printable, at most 76 characters a line, headers under 998.
        head, body = MessageTemplate(rendered, settings).sample().split(b"\r\n\r\n", 1)
        assert max(len(line) for line in body.split(b"\r\n")) <= 76, path
        assert max(len(line) for line in head.split(b"\r\n")) <= 998, path
        code = {line for pre in content_of(rendered.html)[1].iter("pre")
                for line in pre.text_content().split("\n")}
        code = {c.strip() for c in code}
        for line in rendered.text.split("\n"):
            # A code line is verbatim, also inside a quote ("> " prefixes).
            if len(line) <= 78 or re.sub(r"^(?:> ?)+", "", line).strip() in code:
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


HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def outline(root) -> list[int]:
    return [int(h.tag[1]) for h in root.iter(*HEADINGS)]


def test_corpus_one_h1_and_no_skipped_heading_level(rendered_corpus):
    """Every era: the title is the one <h1>, content starts at <h2>, no level skipped."""
    for path, issue, rendered in rendered_corpus:
        doc = lxml_html.document_fromstring(rendered.html)
        (h1,) = doc.iter("h1")
        assert h1.text_content().strip() == issue.title, path
        levels = outline(doc)
        assert levels[0] == 1 and 1 not in levels[1:], (path, levels)
        assert all(b <= a + 1 for a, b in zip(levels, levels[1:])), (path, levels)


def test_corpus_no_whitespace_in_any_href(rendered_corpus):
    for path, _, rendered in rendered_corpus:
        doc = lxml_html.document_fromstring(rendered.html)
        for el in doc.xpath("//*[@href or @src]"):
            for url in (el.get("href"), el.get("src")):
                assert url is None or not re.search(r"\s", url), (path, url)


def test_corpus_logo_is_the_configured_absolute_url(rendered_corpus):
    from mailer.config import Settings

    logo_url = Settings().newsletter.logo_url
    assert logo_url.startswith("https://") and logo_url.endswith("/images/logo400.png")
    for path, _, rendered in rendered_corpus:
        doc = lxml_html.document_fromstring(rendered.html)
        (logo,) = doc.find_class("logo")
        (img,) = logo.iter("img")
        # Decorative: the <h1> right below names the newsletter, so images-off says it once.
        assert img.get("src") == logo_url and img.get("alt") == "", path
        assert 2 * int(img.get("width")) <= 400, path  # the 400 px source is sharp on 2x screens


def test_headings_are_relevelled_without_gaps():
    from mailer.issue.content import outline_headings

    def levels(html):
        frag = lxml_html.fragment_fromstring(html, create_parent="div")
        outline_headings(frag)
        return outline(frag)

    # 2013-2015: `#` sections with `##` below; 2018: `#` then `###` (a skipped level).
    assert levels("<h1>a</h1><h2>b</h2><h1>c</h1><h3>d</h3><h3>e</h3>") == [2, 3, 2, 3, 3]
    # 2021 on: `##` sections; a later `#` (raw HTML or a stray one) still starts at h2.
    assert levels("<h2>a</h2><h3>b</h3><h4>c</h4><h2>d</h2>") == [2, 3, 4, 2]
    assert levels("<h3>a</h3><h6>b</h6><h1>c</h1>") == [2, 3, 2]
    assert levels("<p>no headings</p>") == []


def test_preheader_hidden_without_low_contrast_text(sample):
    doc = lxml_html.document_fromstring(sample.html)
    (pre,) = doc.find_class("preheader")
    style = pre.get("style").replace(" ", "")
    assert "display:none" in style and sample.preheader in pre.text_content()
    # SpamAssassin's HTML_FONT_LOW_CONTRAST: no colour and no tiny font on hidden text.
    assert "color" not in style and "font-size" not in style


def test_postal_address_and_sponsor_in_both_parts(issue_file, settings):
    s = with_overrides(settings, newsletter={"postal_address": "This Week in Rust\n 1 Main St,\nSpringfield "},
                       sponsor={"name": "Acme", "url": "https://acme.example/", "logo": "https://acme.example/l.png",
                                "text": "Builds, but faster."})
    rendered = render_issue(parse_issue(issue_file()), s)
    doc = lxml_html.document_fromstring(rendered.html)
    footer = " ".join(doc.find_class("ft")[0].text_content().split())
    assert footer.endswith("This Week in Rust, 1 Main St, Springfield")
    assert rendered.text.rstrip().endswith("This Week in Rust, 1 Main St, Springfield")
    (panel,) = doc.find_class("sponsor-text")
    for br in panel.iter("br"):
        br.tail = "\n" + (br.tail or "")
    said = [" ".join(line.split()) for line in panel.text_content().strip().split("\n")]
    assert said == ["This issue is sponsored by Acme.", "Builds, but faster."]
    assert "\n".join(said + ["https://acme.example/"]) in rendered.text  # the same words in the plain part
    (link,) = panel.iter("a")
    assert link.get("href") == "https://acme.example/"
    (logo,) = doc.find_class("sponsor-logo")
    assert [i.get("src") for i in logo.iter("img")] == ["https://acme.example/l.png"]


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
    assert "!important" in dark and re.search(r"\.c a[,{][^}]*color:#ffa657", dark)
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
    assert "This issue is sponsored by Acme Builds.\nFast CI for Rust.\nhttps://acme.example\n" in r.text
    r = render_issue(parse_issue(issue_file(Sponsor="Other Co | https://other.example | https://other.example/l.png")), s)
    assert "Other Co" in r.html and "Acme" not in r.html + r.text
    doc, _ = content_of(r.html)
    # Decorative: the linked name next to it says who it is (images off: not said twice).
    assert doc.xpath("//img[@src='https://other.example/l.png']/@alt") == [""]
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
    assert "sponsored by The Very Long Sponsor Company Name Incorporated. We build fast" in flat
    assert "\nhttps://sponsor.example.com/landing/page?utm_source=twir\n" in footer
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


def test_tables_get_a_scroll_wrapper_and_text_after_them_stays():
    from mailer.issue.content import wrap_tables

    frag = lxml_html.fragment_fromstring(
        "<p>a</p><table><tr><td><table><tr><td>inner</td></tr></table></td></tr></table>after<p>b</p>",
        create_parent="div")
    wrap_tables(frag)
    (wrapper,) = frag.find_class("tw")
    assert "overflow-x:auto" in wrapper.get("style")
    assert [t.getparent() is wrapper for t in frag.iter("table")] == [True, False]  # nested: not wrapped
    assert wrapper.tail == "after" and frag.text_content() == "ainnerafterb"


def test_fenced_code_inside_a_quote_keeps_its_alignment(issue_file, settings):
    """Quote of the Week 2022-03-16: rustc output fenced inside a blockquote (was a run-on paragraph)."""
    body = """\
    > protip: the rust extern keyword has a --help flag
    >
    > ```text
    > error[E0703]: invalid ABI: found `--help`
    >  --> ext.rs:1:8
    >   |
    > 1 | extern "--help" {}  fn main() {}
    >   |        ^^^^^^^^ invalid ABI
    > ```
    """
    rendered = render_issue(parse_issue(issue_file(body)), settings)
    _, content = content_of(rendered.html)
    (quote,) = content.iter("blockquote")
    (pre,) = quote.iter("pre")
    assert ' --> ext.rs:1:8\n  |\n1 | extern "--help" {}  fn main() {}\n  |        ^^^^^^^^ invalid ABI' in pre.text_content()
    assert '>     1 | extern "--help" {}  fn main() {}\n>       |        ^^^^^^^^ invalid ABI' in rendered.text
