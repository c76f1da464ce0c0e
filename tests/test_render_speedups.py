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
def test_extension_instances_build_the_named_pipeline(corpus):
    named = markdown.Markdown(extensions=content.EXTENSIONS, extension_configs=content.EXTENSION_CONFIGS,
                              output_format="html")
    for path in corpus[::4]:
        text = "\n" + content.CONTROL_CHARS.sub("", path.read_text(encoding="utf-8"))
        assert content.markdown_html(path.read_text(encoding="utf-8")) == named.reset().convert(text), path.name
