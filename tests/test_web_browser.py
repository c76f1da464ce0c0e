"""Headless Chromium: a reader opens the unsubscribe link of a rendered issue, clicks, sees the answer."""

from __future__ import annotations

import email
import os
import re
import shutil
from email import policy
from pathlib import Path

import pytest

from mailer.issue.parse import parse_issue
from mailer.sending.message import MessageTemplate
from mailer.models import Status
from mailer.issue.render import render_issue

# Set TWIRMAIL_SCREENSHOTS=DIR to keep the screenshots for a look.
KEEP = os.environ.get("TWIRMAIL_SCREENSHOTS")


def unsubscribe_link(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=policy.default)
    header = re.search(r"<(http[^>]+)>", str(msg["List-Unsubscribe"])).group(1)
    html = msg.get_body(("html",)).get_content()
    assert f'href="{header}"' in html  # the footer link and the header agree
    return header


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000  # a real picture, not a blank
    if KEEP:
        Path(KEEP).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(KEEP) / name)
    return path


@pytest.mark.browser
@pytest.mark.slow
def test_unsubscribe_from_a_rendered_issue_on_a_phone(live, browser, draft, tmp_path):
    sub, token = live.add("reader@example.com")
    rendered = render_issue(parse_issue(draft), live.settings)
    raw = MessageTemplate(rendered, live.settings).build(sub.email, token)
    url = unsubscribe_link(raw)
    assert url == f"{live.url}/unsubscribe/{token}"

    # No JavaScript: the pages must work without it.
    context = browser.new_context(viewport={"width": 375, "height": 740}, java_script_enabled=False,
                                  device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.goto(url)
    assert page.locator("h1").inner_text().startswith("Unsubscribe from")
    shot(page, tmp_path, "unsubscribe-375.png")
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED  # opening changed nothing

    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "You have been unsubscribed"
    assert page.get_by_role("button", name="Subscribe again").is_visible()
    shot(page, tmp_path, "unsubscribed-375.png")
    assert live.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    assert live.store.history(sub.id)[-1].reason == "unsubscribe-link"
    # Nothing wider than the phone: no sideways scrolling.
    box = page.locator("main").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    button = page.get_by_role("button", name="Subscribe again").bounding_box()
    assert button["height"] >= 44  # a comfortable tap target
    context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_subscribe_and_confirm_on_a_phone(start_web, browser, tmp_path):
    from mailer.sending.transport import OutboxTransport

    outbox = OutboxTransport(tmp_path / "outbox")
    live = start_web(transport=outbox)
    context = browser.new_context(viewport={"width": 375, "height": 740}, java_script_enabled=False,
                                  device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.goto(f"{live.url}/subscribe")
    shot(page, tmp_path, "subscribe-375.png")
    trap = page.locator("#website").bounding_box()  # the honeypot is off-screen for people
    assert trap is None or trap["x"] + trap["width"] <= 0
    page.get_by_label("Email address").fill("phone.reader@example.com")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Check your inbox"
    live.wait_idle()  # the mail goes out just after the answer
    [eml] = list(outbox.dir.glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    link = re.search(r"http://\S+/confirm/\S+", msg.get_body(("plain",)).get_content()).group(0)
    page.goto(link)
    shot(page, tmp_path, "confirm-375.png")
    page.get_by_role("button", name="Confirm subscription").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "You are subscribed"
    assert live.store.get("phone.reader@example.com").status is Status.SUBSCRIBED
    page.goto(f"{live.url}/unsubscribe/forged.token")
    assert page.locator("h1").inner_text() == "This link is not valid"
    shot(page, tmp_path, "invalid-375.png")
    context.close()
