"""The render speed-ups change no output: each fast path against what it replaced.

- textpart.wrap against textwrap.wrap (same arguments the text part used);
- the premailer rule cache against a plain premailer, and keyed by the CSS text;
- the Markdown pipeline built from extension instances against the named extensions.
"""

from __future__ import annotations

import textwrap

import markdown
from hypothesis import example, given, settings as hsettings, strategies as st

from mailer.issue import content, inline
from mailer.issue.textpart import wrap


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


# -- premailer rule cache -------------------------------------------------------------
PAGE = ('<html><head><style>{css}</style><style data-premailer="ignore">.x{{color:red}}</style></head>'
        '<body><div class="c"><h2>Title</h2><p>A <a href="https://example.org/">link</a> '
        '<code>x</code></p></div></body></html>')


def plain_premailer(html: str) -> str:
    import premailer

    return premailer.Premailer(html, **inline.OPTIONS).transform(pretty_print=False)


def test_cached_rules_give_premailers_own_output():
    css_a = ".c a { color: #b7410e; } .c h2 { font-size: 21px; } .c code { background: #eff1f3; }"
    css_b = ".c a { color: #123456; text-decoration: none; }"
    for css in (css_a, css_b, css_a):  # a second stylesheet, then the first again from the cache
        page = PAGE.format(css=css)
        assert inline.inline_css(page) == plain_premailer(page)
    assert "#123456" in inline.inline_css(PAGE.format(css=css_b))


# -- Markdown pipeline ----------------------------------------------------------------
def test_extension_instances_build_the_named_pipeline(corpus):
    named = markdown.Markdown(extensions=content.EXTENSIONS, extension_configs=content.EXTENSION_CONFIGS,
                              output_format="html")
    for path in corpus[::8]:
        text = "\n" + content.CONTROL_CHARS.sub("", path.read_text(encoding="utf-8"))
        assert content.markdown_html(path.read_text(encoding="utf-8")) == named.reset().convert(text), path.name
