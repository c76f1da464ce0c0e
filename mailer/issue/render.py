"""Issue -> responsive HTML email + plain text (``render_issue``).

Stages (timed for bench/render.py):
1. markdown: body -> clean content fragment (mailer.issue.content)
2. mjml: the Jinja2/MJML layout with a marker where the content goes
3. text: the plain-text part from the same content fragment (mailer.issue.textpart)
4. inline: premailer inlines content.css (link, code, heading styles) into the
   content fragment only; the layout's own <style> blocks (mobile + dark mode)
   stay as they are
5. inject: marker -> content. After MJML on purpose: MRML collapses the
   whitespace inside <pre>, which would flatten every code block.
6. minify: whitespace only
"""

from __future__ import annotations

import functools
import re
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from lxml import etree

from mailer.config import Settings
from mailer.issue.content import content_html, outline_headings, wrap_tables
from mailer.issue.inline import inline_css
from mailer.errors import RenderError
from mailer.issue.minify import minify
from mailer.models import UNSUBSCRIBE_PLACEHOLDER, Issue, Rendered, SponsorInfo
from mailer.templating import environment
from mailer.issue.textpart import SPONSOR_LINE, html_to_text, text_footer, text_header

TEMPLATE = "issue.mjml.j2"
CONTENT_MARKER = "@@TWIR_CONTENT@@"
PREHEADER_MAX = 140
# After the hidden preheader: "combining grapheme joiner + space" pairs fill the
# inbox preview so clients do not append the body's first words (Maizzle's way).
PREHEADER_SPACER = "\u034f " * 90
# libxml2 (premailer, lxml) stops parsing 256 elements deep and silently drops the
# rest of the page, footer and unsubscribe link included. The layout puts the
# content ~15 deep; no published issue nests more than a few levels.
MAX_CONTENT_DEPTH = 100
COLOR_SCHEME_META = ('<meta name="color-scheme" content="light dark">'
                     '<meta name="supported-color-schemes" content="light dark">')


@functools.lru_cache(maxsize=8)
def _environment(templates_dir: Path) -> jinja2.Environment:
    if not (templates_dir / TEMPLATE).is_file():
        raise RenderError(f"template {TEMPLATE} not found in {templates_dir} (setting render.templates_dir)")
    return environment(templates_dir, autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@functools.lru_cache(maxsize=8)
def _css(templates_dir: Path, name: str) -> str:
    try:
        return (templates_dir / name).read_text(encoding="utf-8")
    except OSError as exc:
        raise RenderError(f"cannot read {name} in {templates_dir}: {exc.strerror}") from None


def web_url(issue: Issue, settings: Settings) -> str:
    base = settings.newsletter.site_url.rstrip("/")
    return f"{base}/blog/{issue.date:%Y/%m/%d}/this-week-in-rust-{issue.number}/"


def sponsor_for(issue: Issue, settings: Settings) -> SponsorInfo | None:
    """The issue's `Sponsor:` header wins (even `none`), else the configured sponsor."""
    if "sponsor" in issue.headers:
        return issue.sponsor
    s = settings.sponsor
    return SponsorInfo(s.name, s.url, s.logo, s.text) if s.name else None


def subject_for(issue: Issue, settings: Settings) -> str:
    return issue.subject or settings.newsletter.subject.format(number=issue.number, title=issue.title)


def preheader_for(issue: Issue, fragment) -> str:
    """`Preheader:` header, else the first few linked headlines of the issue."""
    if issue.preheader:
        return issue.preheader
    items = []
    for li in fragment.iter("li"):
        a = next(li.iter("a"), None)
        text = " ".join("".join(a.itertext() if a is not None else "").split())
        if len(text) > 12:
            items.append(text)
        if len(" · ".join(items)) > PREHEADER_MAX:
            break
    text = " · ".join(items) or " ".join("".join(fragment.itertext()).split())
    if len(text) > PREHEADER_MAX:
        text = text[:PREHEADER_MAX].rsplit(" ", 1)[0] + " …"
    return text


def postal_address(settings: Settings) -> str:
    """The configured postal address on one line (a multi-line value is joined with commas)."""
    lines = [" ".join(line.split()) for line in settings.newsletter.postal_address.splitlines()]
    return ", ".join(line.strip(" ,") for line in lines if line.strip(" ,"))


def _date(issue: Issue) -> str:
    return f"{issue.date.day} {issue.date:%B %Y}"


class _Timer:
    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        yield
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000


def layout_html(issue: Issue, settings: Settings, *, subject: str, preheader: str, url: str) -> str:
    """The MJML layout rendered to HTML, with CONTENT_MARKER where the content goes."""
    from mjml import mjml2html  # the Rust extension: only loaded when rendering

    tdir = settings.templates_dir
    news = settings.newsletter
    try:
        mjml = _environment(tdir).get_template(TEMPLATE).render(
            lang=news.language, subject=subject, preheader=preheader, preheader_spacer=PREHEADER_SPACER,
            name=news.name, title=issue.title or subject, number=issue.number, date=_date(issue),
            logo_url=news.logo_url, logo_width=news.logo_width, site_url=news.site_url,
            site_host=urlsplit(news.site_url).netloc, web_url=url, privacy_url=news.privacy_url,
            unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER, sponsor=sponsor_for(issue, settings),
            sponsor_line=SPONSOR_LINE, postal_address=postal_address(settings), content_marker=CONTENT_MARKER,
        )
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise RenderError(f"template error: {exc}", path=tdir / TEMPLATE, line=line) from None
    try:
        out = mjml2html(mjml, disable_comments=True)
    except Exception as exc:  # MRML raises plain exceptions with a message
        # Issue values reach MJML escaped: a failure here is the template's.
        raise RenderError(f"MJML rendering failed: {exc}", path=tdir / TEMPLATE) from None
    if out.count(CONTENT_MARKER) != 1:
        raise RenderError("the template must contain the content marker exactly once", path=tdir / TEMPLATE)
    # MJML's own and the layout's rules stay in <style> (content.css is inlined into the
    # content). Added after MJML so its CSS is never parsed as markup.
    return out.replace("</head>", f"{COLOR_SCHEME_META}<style>{_css(tdir, 'layout.css')}</style></head>", 1)


# An element more than MAX_CONTENT_DEPTH levels below the fragment's root, found by
# libxml2 level by level (a Python walk over every element's ancestors cost 0.5 ms).
_TOO_DEEP = "/".join(["*"] * (MAX_CONTENT_DEPTH + 1))


def content_tree(content: str):
    """The content fragment parsed into a ``<div>``, the root everything after works on.

    Plain ``lxml.etree`` elements, not ``lxml.html``'s: those look up their Python
    class in Python for every element touched (a tenth of the text part's time).
    """
    # libxml2's HTML parser puts the div in <html><body>; the div is the content's root.
    return etree.HTML(f"<div>{content or '<p></p>'}</div>").find("body/div")


def _refuse_deep(fragment, issue: Issue) -> None:
    if fragment.xpath(_TOO_DEEP):
        above = sum(1 for _ in fragment.iterancestors())  # the parser's <html><body>
        depth = max(sum(1 for _ in el.iterancestors()) for el in fragment.iter()) - above
        raise RenderError(f"content is nested {depth} elements deep (blockquotes or lists in lists); "
                          f"an email allows {MAX_CONTENT_DEPTH}: its footer would be lost", path=issue.path)


def render_issue(issue: Issue, settings: Settings, *, timings: dict[str, float] | None = None) -> Rendered:
    """Render one issue; ``timings`` (if given) receives milliseconds per stage."""
    timer = _Timer(timings)
    with timer("markdown"):
        try:
            content = content_html(issue.body)
        except Exception as exc:  # a Markdown extension choking on odd input
            raise RenderError(f"Markdown rendering failed: {exc}", path=issue.path) from None
        fragment = content_tree(content)
        _refuse_deep(fragment, issue)
        outline_headings(fragment)  # the title is the <h1>; content starts at <h2>
        wrap_tables(fragment)
    subject = subject_for(issue, settings)
    preheader = preheader_for(issue, fragment)
    url = web_url(issue, settings)
    with timer("mjml"):
        layout = layout_html(issue, settings, subject=subject, preheader=preheader, url=url)
    with timer("text"):
        news = settings.newsletter
        text = text_header(name=news.name, number=issue.number, date=_date(issue), web_url=url)
        text += html_to_text(fragment) + text_footer(
            name=settings.newsletter.name, web_url=url, sponsor=sponsor_for(issue, settings),
            privacy_url=settings.newsletter.privacy_url, unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER,
            postal_address=postal_address(settings),
        )
    with timer("inline"):
        fragment.set("class", "c")  # the wrapper every content.css rule is scoped to
        leftover = inline_css(fragment, _css(settings.templates_dir, "content.css"))
    with timer("inject"):
        # Serialised from the parsed tree rather than the raw string: stray or
        # unclosed tags in the author's raw HTML stay balanced inside the content.
        page = layout.replace(CONTENT_MARKER, etree.tostring(fragment, encoding="unicode", method="html"), 1)
        if leftover:  # media queries or pseudo-classes in content.css: kept as a <style> block
            page = page.replace("</head>", f"<style>{leftover}</style></head>", 1)
        if page.lstrip()[:9].lower() != "<!doctype":  # (not the whole page lower-cased)
            page = "<!doctype html>\n" + page
    with timer("minify"):
        if settings.render.minify:
            page = minify(page)
    return Rendered(issue=issue, subject=subject, preheader=preheader, html=page, text=text, web_url=url)
