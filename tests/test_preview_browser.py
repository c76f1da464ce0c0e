"""Headless Chromium: the email at 375/600 px, light and dark; the preview page."""

from __future__ import annotations

import threading

import pytest

from mailer.issue.parse import parse_issue
from mailer.issue.preview import make_server
from mailer.issue.render import render_issue
from tests.fixtures.render import offline

pytestmark = pytest.mark.browser

# Oldest issue, one with fenced code, one with tables, the latest.
SAMPLES = ("2013-06-29", "2015-03-16", "2022-05-11", "2026-07-01")

STYLE_PROBE = """() => {
  const css = el => el ? getComputedStyle(el) : null;
  const link = document.querySelector('.c a');
  const card = document.querySelector('.card > table');
  return {
    scroll: document.documentElement.scrollWidth,
    // Clipped content does not scroll: also find the right-most content box (a wide
    // table scrolls inside its .tw wrapper: the wrapper is measured, not the table).
    right: Math.max(...[...document.querySelectorAll('.c, .c *:not(.tw *)')].map(e => e.getBoundingClientRect().right)),
    body: css(document.body).backgroundColor,
    card: css(card).backgroundColor,
    link: css(link).color,
    text: css(document.querySelector('.content div')).color,
    title: css(document.querySelector('.hd-title a')).color,
  };
}"""


@pytest.fixture(scope="module")
def samples(corpus):
    from mailer.config import Settings

    paths = [p for p in corpus if p.name.startswith(SAMPLES)]
    assert len(paths) == len(SAMPLES)
    settings = Settings()
    return [(p, render_issue(parse_issue(p), settings)) for p in paths]


def test_email_in_chromium_light_and_dark(browser, samples, screenshot_dir):
    for path, rendered in samples:
        seen = {}
        for width in (375, 600):
            for scheme in ("light", "dark"):
                page = browser.new_page(viewport={"width": width, "height": 1000}, color_scheme=scheme)
                offline(page)
                page.set_content(rendered.html, wait_until="load")
                probe = page.evaluate(STYLE_PROBE)
                page.screenshot(path=str(screenshot_dir / f"{path.stem}-{width}-{scheme}.png"))
                page.close()
                assert probe["scroll"] <= width, (path.name, width, scheme, probe)
                assert probe["right"] <= width, (path.name, width, scheme, probe)
                seen[width, scheme] = probe
        for width in (375, 600):
            light, dark = seen[width, "light"], seen[width, "dark"]
            assert light["body"] != dark["body"] and light["card"] != dark["card"], path.name
            # The dark rules beat the inlined light colours.
            assert light["link"] == "rgb(183, 65, 14)" and dark["link"] == "rgb(255, 166, 87)"
            assert dark["text"] == dark["title"] == "rgb(230, 237, 243)"


def test_code_blocks_keep_lines_in_browser(browser, samples):
    path, rendered = next(s for s in samples if s[0].name.startswith("2015-03-16"))
    page = browser.new_page(viewport={"width": 600, "height": 800})
    offline(page)
    page.set_content(rendered.html)
    codes = page.eval_on_selector_all(".c pre", "els => els.map(e => e.innerText)")
    page.close()
    assert codes and all("\n" in code for code in codes)


@pytest.fixture
def preview(issue_file, settings):
    path = issue_file("## Hello\n\nFirst version with [a link](https://example.org/).\n")
    server = make_server(path, settings, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield path, f"http://{host}:{port}/"
    server.shutdown()
    server.server_close()


# Generous: the waits end as soon as the condition holds, and a loaded 2-CPU CI box is slow.
def wait_frame(page, condition: str, timeout: float = 30_000):
    """Wait until ``condition`` (JS using ``doc``, the frame's loaded document) holds."""
    page.wait_for_function(
        "() => { const f = document.getElementById('frame'); const doc = f.contentDocument;"
        " return !!(doc && doc.readyState === 'complete' && doc.body && (" + condition + ")); }",
        timeout=timeout)


def test_preview_page_switches_views_and_rerenders(browser, preview, screenshot_dir):
    path, url = preview
    page = browser.new_page(viewport={"width": 1000, "height": 900}, color_scheme="light")
    offline(page)
    page.goto(url)
    wait_frame(page, "doc.querySelector('.c') && doc.querySelector('.c').textContent.includes('First version')")
    assert page.locator("#frame").get_attribute("width") == "600"

    page.click("button[data-view=mobile]")
    wait_frame(page, "f.width == '375' && doc.querySelector('.c')")
    assert page.evaluate("document.getElementById('frame').contentDocument.documentElement.scrollWidth") <= 375
    assert page.get_attribute("button[data-view=mobile]", "aria-pressed") == "true"

    page.click("button[data-view=dark]")
    wait_frame(page, "doc.location.pathname == '/email-dark.html'"
                     " && getComputedStyle(doc.body).backgroundColor == 'rgb(13, 17, 23)'")
    page.screenshot(path=str(screenshot_dir / "preview-dark.png"))

    page.click("button[data-view=text]")
    wait_frame(page, "doc.location.pathname == '/email.txt' && doc.body.innerText.includes('[1] https://example.org/')")

    # Editing the file re-renders: the open view follows without a reload.
    path.write_text(path.read_text().replace("First version", "Second version"), encoding="utf-8")
    wait_frame(page, "doc.body.innerText.includes('Second version')")
    page.click("button[data-view=desktop]")
    wait_frame(page, "doc.querySelector('.c') && doc.querySelector('.c').textContent.includes('Second version')")
    page.screenshot(path=str(screenshot_dir / "preview-rerendered.png"))

    # A broken edit shows the error instead of killing the server.
    path.write_bytes(b"Title: This Week in Rust 600\nDate: never\n\nx\n")
    page.wait_for_function("document.getElementById('error').textContent.includes('invalid Date')",
                           timeout=30_000)
    page.close()


def test_preview_lists_check_findings_beside_the_email(browser, issue_file, settings, screenshot_dir):
    from mailer.sending.preflight import check_message

    path = issue_file("## Updates\n\n* [**Boulder Elixir Meetup**](hhttps://www.meetup.com/boulder-elixir/events/"
                      "302991078/)\n* [Old](http://old.example/)\n\n## Crate of the Week\n\n<!-- COTW goes here -->\n")
    server = make_server(path, settings, port=0, checker=check_message)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 800}, color_scheme="light")
        offline(page)
        page.goto(f"http://{host}:{port}/")
        page.wait_for_function("document.querySelectorAll('#findings li').length == 3", timeout=30_000)
        assert page.inner_text("#summary") == "check: 1 error(s), 2 warning(s)"
        items = page.eval_on_selector_all("#findings li", "els => els.map(e => [e.className, e.innerText])")
        assert items[0][0] == "error" and "line 8: error" in items[0][1] and "[scheme-typo]" in items[0][1]
        assert {i[1].rsplit("[", 1)[1] for i in items[1:]} == {"http]", "unfilled]"}
        wait_frame(page, "doc.querySelector('.c') && doc.querySelector('.c').textContent.includes('Boulder')")
        box = page.locator("#findings").bounding_box()
        frame = page.locator("#frame").bounding_box()
        assert box["x"] >= frame["x"] + frame["width"]  # beside the email, not over it
        page.screenshot(path=str(screenshot_dir / "preview-findings.png"))
        # Fixing the file clears the findings without a reload.
        path.write_text(path.read_text().replace("hhttps", "https").replace("http://old", "https://old")
                        .replace("<!-- COTW goes here -->", "This week's crate is [jiff](https://docs.rs/jiff)."),
                        encoding="utf-8")
        page.wait_for_function("document.querySelectorAll('#findings li').length == 0", timeout=30_000)
        assert page.inner_text("#summary") == "check: 0 error(s), 0 warning(s)"
        page.close()
    finally:
        server.shutdown()
        server.server_close()
