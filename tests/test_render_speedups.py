"""The render speed-ups change no output: each fast path against what it replaced.

- textpart.wrap against textwrap.wrap (same arguments the text part used);
- inlining the content fragment (cached rules) against a plain premailer over a
  whole page, and keyed by the CSS text; content.css without its ".c" scope;
- the minifier's whitespace passes against the two regexes they replaced;
- the Markdown pipeline built from extension instances (patterns read from a
  list) against the named extensions.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import markdown
from hypothesis import example, given, settings as hsettings, strategies as st
from lxml import html as lxml_html

from mailer.issue import content, inline, minify
from mailer.issue.textpart import wrap

TEMPLATES = Path(__file__).resolve().parents[1] / "email_templates"


# -- text part ------------------------------------------------------------------------
_words = st.text(alphabet="ab \u00a0\t\n-/:.\x0b", min_size=0, max_size=200)


@hsettings(max_examples=400, deadline=None)
@given(_words, st.integers(min_value=1, max_value=90))
@example("a  b", 3)
@example(" a b ", 2)
@example("\u00a0 a", 1)
@example("https://example.org/" + "x" * 90 + " tail", 78)
def test_wrap_is_textwrap(text, width):
    assert wrap(text, width) == textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


# -- premailer on the content fragment ------------------------------------------------
PAGE = ('<html><head><style>{css}</style><style data-premailer="ignore">.x{{color:red}}</style></head>'
        '<body><p><a href="https://example.org/layout">layout</a></p><div class="c">{content}</div></body></html>')
CONTENT = ('<h2>Title</h2><p>A <a href="https://example.org/">link</a> <code>x</code></p>'
           '<pre><code>fn main() {}</code></pre><table><tr><td style="color:red">1</td></tr></table>'
           '<blockquote><p>quoted <img src="https://example.org/i.png" alt=""></p></blockquote>')


def plain_premailer(html: str) -> str:
    import premailer

    return premailer.Premailer(html, **inline.OPTIONS).transform(pretty_print=False)


def whole_page_content(css: str) -> str:
    """What a plain premailer over a whole page makes of the content's div.c."""
    page = lxml_html.fromstring(plain_premailer(PAGE.format(css=css, content=CONTENT)))
    return lxml_html.tostring(page.find_class("c")[0], encoding="unicode")


def fragment_content(css: str) -> str:
    fragment = lxml_html.fragment_fromstring(CONTENT, create_parent="div")
    fragment.set("class", "c")
    assert inline.inline_css(fragment, css) == ""
    return lxml_html.tostring(fragment, encoding="unicode")


def test_fragment_inlining_gives_premailers_whole_page_output():
    css_a = ".c a { color: #b7410e; } .c h2 { font-size: 21px; } .c code { background: #eff1f3; }"
    css_b = ".c a { color: #123456; text-decoration: none; } .c td { padding: 4px; }"
    for css in (css_a, css_b, css_a):  # a second stylesheet, then the first again from the cache
        assert fragment_content(css) == whole_page_content(css)
    assert "#123456" in fragment_content(css_b)


def test_a_stylesheet_that_says_unset_still_drops_unset_properties():
    css = ".c a { color: unset; font-weight: bold; } .c code { background: #eff1f3; }"
    assert fragment_content(css) == whole_page_content(css)
    assert "unset" not in fragment_content(css) and "font-weight:bold" in fragment_content(css)


def test_content_css_needs_no_scope_on_the_fragment():
    shipped = (TEMPLATES / "content.css").read_text(encoding="utf-8")
    # As it was: every selector of every rule under .c.
    scoped = re.sub(r"(?m)^([a-z][^{/]*)\{", lambda m: ", ".join(f".c {sel.strip()}" for sel in m.group(1).split(","))
                    + " {", shipped)
    assert scoped.count(".c ") >= 12
    assert fragment_content(shipped) == whole_page_content(scoped)
    # The layout's own link is outside the content: no content.css rule reaches it.
    page = plain_premailer(PAGE.format(css=scoped, content=CONTENT))
    assert '<a href="https://example.org/layout">' in page


def test_rules_premailer_cannot_inline_come_back_for_a_style_block():
    fragment = lxml_html.fragment_fromstring('<p><a href="https://example.org/">x</a></p>', create_parent="div")
    leftover = inline.inline_css(fragment, "a { color: red; } a:hover { color: blue; } "
                                           "@media (max-width: 480px) { a { color: green; } }")
    assert 'style="color:red"' in lxml_html.tostring(fragment, encoding="unicode")
    assert "a:hover" in leftover and "@media" in leftover and "green" in leftover


# -- minifier ---------------------------------------------------------------------------
def old_collapse(chunk: str) -> str:
    return re.sub(r"[ \t\r\f\v]{2,}|[\t\r\f\v]", " ", re.sub(r"[ \t\r\f\v]*\n\s*", "\n", chunk))


@hsettings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab< \t\r\n\f\v\u00a0", max_size=60))
@example(" a  \r\n \t\n b\t")
def test_whitespace_passes_are_the_old_ones(chunk):
    assert minify._collapse(chunk) == old_collapse(chunk)


# -- Markdown pipeline ----------------------------------------------------------------
def stock_markdown() -> markdown.Markdown:
    return markdown.Markdown(extensions=content.EXTENSIONS, extension_configs=content.EXTENSION_CONFIGS,
                             output_format="html")


def test_fast_pipeline_is_the_named_stock_pipeline_on_the_corpus(corpus, draft):
    named = stock_markdown()
    for path in [*corpus, draft]:
        text = "\n" + content.CONTROL_CHARS.sub("", path.read_text(encoding="utf-8"))
        assert content.markdown_html(path.read_text(encoding="utf-8")) == named.reset().convert(text), path.name
    assert type(content._markdown().treeprocessors["inline"]).__name__ == "FastInlineProcessor"


_md_pieces = st.sampled_from([
    "[a](https://x.org/)", "[a][r]", "[r]", "[a][]", "![i](https://x.org/i.png)", "![i][r]", "[^1]", "`c`",
    "``c`d``", "\\*", "\\[", "*e*", "**s**", "_u_", "__d__", "<https://x.org/>", "<a@x.org>", "<b>h</b>",
    "&amp;", "&#123;", "  \n", "\n", "\n\n", " ", "text", "[", "]", "(", ")", "!", "<", "&", "*", "_", "`",
    "\n\n[r]: https://ref.org/\n", "\n\n[^1]: note\n", "\n\n* item ", "\n\n> quote ", "\n\n```\ncode\n```\n",
    # block constructs whose tests the fast pass guards, and near misses
    "\n\n# H\n", "\n## H ##\n", "#", "\nH\n===\n", "\n-\n", "\n\n---\n", "\n* * *\n", "___", "\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    "|", "\n\nterm\n: definition\n", ":", "\n>", ">", "\n    indented\n", "\n1. one\n",
])


@hsettings(max_examples=400, deadline=None)
@given(st.lists(_md_pieces, max_size=25).map("".join))
@example("[a][r] and [r] and ![i][r]\n\n[r]: https://ref.org/\n")
@example("no refs: [a][r] [r] ![i][r] **x** <https://x.org/> a  \nb &amp;")
def test_fast_inline_pass_is_pythons_markdowns(text):
    assert content.markdown_html(text) == stock_markdown().convert("\n" + text)


def test_only_known_block_tests_are_guarded():
    from markdown.blockprocessors import BlockProcessor

    from mailer.issue import fastmarkdown

    class Note(BlockProcessor):  # not one of Python-Markdown's: its test is never guarded
        def test(self, parent, block):
            return block.startswith("!!")

        def run(self, parent, blocks):
            parent.append(parent.makeelement("aside", {}))
            parent[-1].text = blocks.pop(0)[2:]

    md = stock_markdown()
    md.parser.blockprocessors.register(Note(md.parser), "hashheader_like", 72)
    fastmarkdown.install(md)
    guarded = {name for name in fastmarkdown._names(md.parser.blockprocessors)
               if "test" in vars(md.parser.blockprocessors[name])}
    assert guarded == set(fastmarkdown.BLOCK_TRIGGERS)
    assert md.convert("!!note\n\n# Title\n\n> q") == "<aside>note</aside>\n<h1>Title</h1>\n<blockquote>\n<p>q</p>\n</blockquote>"


def test_a_pattern_the_fast_pass_does_not_know_is_always_called():
    from markdown.inlinepatterns import SimpleTagInlineProcessor

    from mailer.issue import fastmarkdown

    md = stock_markdown()
    md.inlinePatterns.register(SimpleTagInlineProcessor(r"()=(.+?)=", "mark"), "mark", 65)
    fastmarkdown.install(md)
    inline = md.treeprocessors["inline"]
    assert type(inline).__name__ == "FastInlineProcessor"
    assert inline._triggers[[type(p).__name__ for p in inline.inlinePatterns].index("SimpleTagInlineProcessor")] is None
    assert md.convert("plain =marked= text") == "<p>plain <mark>marked</mark> text</p>"


# -- bracket depth guard ------------------------------------------------------------------
def old_bracket_scan(lines: list[str], start: int, path):
    """The guard as it was: every bracket of every line, in Python."""
    from mailer.errors import IssueError
    from mailer.issue import parse

    depth = dict.fromkeys("[(<", 0)
    for number, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            depth = dict.fromkeys("[(<", 0)
            continue
        for m in parse._BRACKET.finditer(line):
            ch = m.group(0)[0]
            if ch in depth:
                depth[ch] += 1
                if depth[ch] > parse.MAX_BRACKET_DEPTH:
                    raise IssueError(f"more than {parse.MAX_BRACKET_DEPTH} nested or unclosed {ch} in one paragraph",
                                     path=path, line=number)
            elif depth[parse._OPENER[ch]]:
                depth[parse._OPENER[ch]] -= 1


def outcome(fn, *args):
    from mailer.errors import IssueError

    try:
        fn(*args)
    except IssueError as exc:
        return str(exc)
    return None


@hsettings(max_examples=600, deadline=None)
@given(st.text(alphabet="[]()<>a/ \t\n\u00a0\x1c", max_size=80), st.integers(min_value=0, max_value=3))
@example("[[[\n\n[[[", 0)
@example("x\n \n[[\n[[", 1)
def test_paragraph_precheck_is_the_line_scan(text, start):
    from unittest import mock

    from mailer.issue import parse

    with mock.patch.object(parse, "MAX_BRACKET_DEPTH", 2):
        want = outcome(old_bracket_scan, text.split("\n"), start, Path("x.md"))
        assert outcome(parse._refuse_deep_brackets, text, start, Path("x.md")) == want


# -- pseudo-tag escaping ------------------------------------------------------------------
_OLD_REAL_TAG = re.compile(r"</?([a-z][a-z0-9]*)" + content._ATTRS + r">")


def old_escape_pseudo_tags(html: str) -> str:
    """The escaper as it was: every "<" of the page looked at in Python."""
    out = []
    pos = skip = 0
    for m in re.finditer("<", html):
        start = m.start()
        if start < max(pos, skip):
            continue
        tag = _OLD_REAL_TAG.match(html, start)
        if tag and tag.group(1) in content.HTML_TAGS:
            skip = tag.end()
            continue
        if html.startswith("<!--", start):
            continue
        out.append(html[pos:start])
        out.append("&lt;")
        pos = start + 1
        end = html.find(">", pos)
        nxt = html.find("<", pos)
        if end != -1 and (nxt == -1 or end < nxt) and "\n" not in html[pos:end]:
            out.append(html[pos:end])
            out.append("&gt;")
            pos = end + 1
    out.append(html[pos:])
    return "".join(out)


_pieces = st.sampled_from(["<", ">", "/", "a", "b", "p", "T", "ab", "code", " ", "\n", '"', "'", "=", "!--",
                           "-->", "x", ",", "<a href=\"", "<p>", "</p>", "<T>", "<br/>", "Vec<", "<!--"])


@hsettings(max_examples=800, deadline=None)
@given(st.lists(_pieces, max_size=30).map("".join))
@example('<a title="x<y" href="u">text</a> Vec<T> <T: Clone>\n<p>')
@example("<ab> <a, b> <!-- c --> <em>x</em> <impl Log>")
def test_split_escaper_is_the_old_one(html):
    assert content.escape_pseudo_tags(html) == old_escape_pseudo_tags(html)


def test_escaper_on_the_corpus(corpus):
    for path in corpus[::3]:
        html = content.HTML_COMMENT.sub("", content.markdown_html(path.read_text(encoding="utf-8")))
        assert content.escape_pseudo_tags(html) == old_escape_pseudo_tags(html), path.name


# -- mojibake: ftfy only for lines its own test calls bad -------------------------------------
def old_mojibake(line: str) -> str | None:
    """As it was: ftfy.fix_encoding on every line, then the Mac Roman emoji repair."""
    from unittest import mock

    import ftfy

    from mailer.issue import lint

    fixed = ftfy.fix_encoding(line)
    if fixed != line:
        return fixed
    with mock.patch.object(lint, "_looks_bad", lambda: (lambda text: False)):
        return lint.mojibake(line)  # the repair that follows ftfy, unchanged


_MOJIBAKE_SOURCES = st.text(alphabet="aé–—’“”🦀€ü ñ\u00a0Ωx.", min_size=1, max_size=12)


@hsettings(max_examples=300, deadline=None)
@given(_MOJIBAKE_SOURCES, st.sampled_from(["latin-1", "cp1252", "mac_roman", "utf-8"]))
@example("café", "latin-1")
@example("— 🦀 “quoted”", "utf-8")
def test_mojibake_with_precheck_is_ftfy_on_every_line(text, codec):
    from mailer.issue.lint import mojibake

    try:
        line = text.encode("utf-8").decode(codec)  # what a wrong decode makes of it
    except UnicodeDecodeError:
        line = text
    assert mojibake(line) == old_mojibake(line)


def test_mojibake_precheck_on_the_corpus_and_draft(corpus, draft):
    from mailer.issue.lint import mojibake

    lines = [line for path in [*corpus, draft] for line in path.read_text(encoding="utf-8").split("\n")
             if not line.isascii()]
    assert len(lines) > 400
    assert [mojibake(line) for line in lines] == [old_mojibake(line) for line in lines]
