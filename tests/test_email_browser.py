"""The email as a reader sees it in headless Chromium: four eras of the corpus at
600 and 375 px, light, dark, forced dark (Chromium's auto-darkening, the way
Gmail's apps invert a message) and with images blocked.

Colours are read back with getComputedStyle and their WCAG contrast computed
here; every combination is saved as a PNG ($TWIRMAIL_SCREENSHOTS to keep them).
"""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from mailer.config import Settings, with_overrides
from mailer.issue.parse import parse_issue
from mailer.issue.render import render_issue

pytestmark = pytest.mark.browser

# Old `#` sections, a 2015 IRC quote in a code block, 2018 `#`/`###` jumps, the 2022 six-column
# perf table (wider than a phone), a 2025 perf table (its headers broke as "mea n").
ERAS = ("2013-06-29", "2015-03-16", "2018-07-10", "2022-05-11", "2025-04-09")
WIDTHS = (600, 375)
MODES = ("light", "dark", "forced", "noimages")
POSTAL = "This Week in Rust, 123 Example Street, Springfield, USA"


def wcag_luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two CSS ``rgb(...)``/``rgba(...)`` colours."""
    la, lb = sorted((wcag_luminance(parse_rgb(a)), wcag_luminance(parse_rgb(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def parse_rgb(css: str) -> tuple[float, float, float]:
    inner = css[css.index("(") + 1:css.index(")")].replace(",", " ").split()
    if len(inner) == 4:
        assert float(inner[3]) == 1, f"translucent colour {css}: measure the surface under it"
    return tuple(float(v) for v in inner[:3])


def test_contrast_matches_wcag_reference_values():
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21)
    assert contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)") == pytest.approx(4.54, abs=0.01)
    assert contrast("rgb(13, 17, 23)", "rgb(22, 27, 34)") == pytest.approx(1.09, abs=0.01)  # the old dark card


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid PNG (stdlib only): stands in for the logos, which live on the internet."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


LOGO = png(400, 400, (183, 65, 14))


def route_images(page, *, images: bool) -> None:
    """Nothing leaves the machine: images get a local PNG (or are blocked), the rest aborts."""
    def route(r):
        url = r.request.url
        if url.startswith(("data:", "about:")):
            r.continue_()
        elif images and r.request.resource_type == "image":
            r.fulfill(status=200, content_type="image/png", body=LOGO)
        else:
            r.abort()
    page.route("**/*", route)


@pytest.fixture(scope="module")
def eras(corpus):
    settings = with_overrides(Settings(), newsletter={"postal_address": POSTAL},
                              sponsor={"name": "Example Sponsor", "url": "https://example.com/",
                                       "logo": "https://example.com/logo.png",
                                       "text": "Fast, reproducible builds for Rust teams."})
    paths = [p for p in corpus if p.name.startswith(ERAS)]
    assert len(paths) == len(ERAS)
    return [(p, render_issue(parse_issue(p), settings)) for p in paths]


PROBE = r"""() => {
  // A missing element reads as null (the assertion then names it) rather than a JS error.
  const css = sel => { const el = document.querySelector(sel); return el ? getComputedStyle(el) : {}; };
  const visible = el => { if (!el) return false; const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const imgs = [...document.images];
  return {
    scroll: document.documentElement.scrollWidth,
    right: Math.max(...[...document.querySelectorAll('.c, .c *:not(.tw *)')].map(e => e.getBoundingClientRect().right)),
    h1: [...document.querySelectorAll('h1')].filter(visible).map(e => e.innerText),
    // What a reader sees with images off: the text, plus the alt text of images that did not load.
    header: [...document.querySelectorAll('.hd img')].filter(i => !i.naturalWidth).map(i => i.alt)
              .concat([(document.querySelector('.hd') || {}).innerText]).join(' '),
    preheader: visible(document.querySelector('.preheader')),
    logo_loaded: imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0),
    logo_width: imgs.length ? imgs[0].getBoundingClientRect().width : 0,
    page: css('body').backgroundColor,
    card: css('.card > table').backgroundColor,
    code: css('.codehilite').backgroundColor,
    inline_code: css('.c p code, .c li code').backgroundColor,
    inline_code_text: css('.c p code, .c li code').color,
    sponsor: css('.sponsor > table > tbody > tr > td').backgroundColor,
    text: css('.content div').color,
    link: css('.c a').color,
    title: css('.hd-title a').color,
    muted: css('.ft .muted div').color,
    muted_link: css('.ft .muted a').color,
    sponsor_text: css('.sponsor-text div').color,
    sponsor_link: css('.sponsor-text a').color,
    tables: [...document.querySelectorAll('.tw')].map(w => ({overflow: getComputedStyle(w).overflowX,
              scrolls: w.scrollWidth > w.clientWidth})),
    // Words of table cells laid out on more than one line (a word broken as "mea|n").
    broken_words: [...document.querySelectorAll('.c th, .c td')].flatMap(cell => {
        const out = [], walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let t = walk.nextNode(); t; t = walk.nextNode())
          for (const m of t.data.matchAll(/\S+/g)) {
            const r = document.createRange();
            r.setStart(t, m.index); r.setEnd(t, m.index + m[0].length);
            const lines = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
            if (lines.size > 1) out.push(m[0]);
          }
        return out; }),
    // Where the first character of each code block sits, relative to the block's padding edge.
    code_indent: [...document.querySelectorAll('.c pre code')].map(c => {
        const pre = c.closest('pre'), text = document.createTreeWalker(c, NodeFilter.SHOW_TEXT).nextNode();
        if (!text || !text.data) return 0;
        const range = document.createRange();
        range.setStart(text, 0); range.setEnd(text, 1);
        return Math.round(range.getClientRects()[0].left - pre.getBoundingClientRect().left
                          - parseFloat(getComputedStyle(pre).paddingLeft)); }),
  };
}"""


def without_dark_support(html: str) -> str:
    """The email as Gmail's apps treat it: no color-scheme opt-in, no dark media query.
    (Chromium only auto-darkens pages that do not declare dark support themselves.)"""
    html = re.sub(r'<meta name="(?:supported-)?color-schemes?"[^>]*>', "", html)
    html = re.sub(r":root\s*\{[^}]*\}", "", html)
    start = html.index("@media (prefers-color-scheme:dark)")
    depth, i = 0, html.index("{", start)
    while True:
        depth += {"{": 1, "}": -1}.get(html[i], 0)
        if depth == 0:
            return html[:start] + html[i + 1:]
        i += 1


def shoot(browser, html: str, path, *, width: int, scheme: str, images: bool) -> dict:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        route_images(page, images=images)
        page.set_content(html, wait_until="load")
        page.screenshot(path=str(path), full_page=True)
        for part, selector in (("table", ".c table"), ("code", ".codehilite"), ("sponsor", ".sponsor")):
            if width == 375 and page.locator(selector).count():
                page.locator(selector).first.screenshot(path=str(path.with_name(f"{path.stem}-{part}.png")))
        return page.evaluate(PROBE)
    finally:
        page.close()


@pytest.fixture(scope="module")
def probes(browsers, eras, screenshot_dir):
    """Every era x width x mode: the PNG saved, the probe returned."""
    out = {}
    for path, rendered in eras:
        era = path.name[:10]
        for width in WIDTHS:
            for mode in MODES:
                b = browsers["forced" if mode == "forced" else "plain"]
                html = without_dark_support(rendered.html) if mode == "forced" else rendered.html
                out[era, width, mode] = shoot(
                    b, html, screenshot_dir / f"{era}-{width}-{mode}.png", width=width,
                    scheme="dark" if mode in ("dark", "forced") else "light", images=mode != "noimages")
    return out


def test_layout_fits_and_has_one_visible_h1(probes, eras):
    titles = {p.name[:10]: r.issue.title for p, r in eras}
    for (era, width, mode), p in probes.items():
        where = (era, width, mode)
        assert p["scroll"] <= width and p["right"] <= width, (where, p["scroll"], p["right"])
        assert p["h1"] == [titles[era]], where
        assert not p["preheader"], where
        # Every table sits in a scroll wrapper: on a phone the 2022 one (six columns of
        # unbreakable words) scrolls inside it, the 2025 one fits. At 600 px the 2022 one
        # fits or not by the font (552 px with Arial's metrics, 614 px with DejaVu Sans).
        assert all(t["overflow"] == "auto" for t in p["tables"]), where
        if era in ("2022-05-11", "2025-04-09") and width == 375:
            assert [t["scrolls"] for t in p["tables"]] == [era == "2022-05-11"], where
        # Cells wrap between words only, never "mea|n".
        assert p["broken_words"] == [], (where, p["broken_words"])
        # Code starts at the block's padding: no inline-code padding on its first line.
        assert set(p["code_indent"]) <= {0}, (where, p["code_indent"])


def test_images_retina_and_nothing_said_twice_without_them(probes, eras):
    for (era, width, mode), p in probes.items():
        if mode == "noimages":
            assert not p["logo_loaded"]
            # With images off the header reads: title, date. The newsletter name is not repeated.
            assert p["header"].count("This Week in Rust") == 1, (era, width, p["header"])
        else:
            assert p["logo_loaded"], (era, width, mode)
            assert 400 >= 2 * p["logo_width"] > 0  # the 400 px source covers 2x screens


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_aa_and_surfaces_are_apart(probes, scheme):
    for era in ERAS:
        p = probes[era, 600, scheme]
        # Structure: the card stands off the page, code blocks off the card (the old dark: 1.09 and 1.16).
        assert contrast(p["card"], p["page"]) >= 1.2, (era, scheme, p["card"], p["page"])
        if p["code"]:
            assert contrast(p["code"], p["card"]) >= 1.2, (era, scheme, p["code"], p["card"])
        text_on = {  # text colour -> the surface it sits on
            "text": "card", "link": "card", "title": "page", "muted": "page", "muted_link": "page",
            "sponsor_text": "sponsor", "sponsor_link": "sponsor",
        }
        for text, surface in text_on.items():
            assert p[text] and p[surface], (era, scheme, text, surface, "not found")
            ratio = contrast(p[text], p[surface])
            assert ratio >= 4.5, (era, scheme, text, p[text], surface, p[surface], round(ratio, 2))
        if p["inline_code"]:
            assert contrast(p["inline_code_text"], p["inline_code"]) >= 4.5, (era, scheme)
