"""Double opt-in over real HTTP: the form, the confirmation mail (outbox transport), the confirm link."""

from __future__ import annotations

import email
import logging
import re
import socket
import threading
import time
from email import policy

import httpx
import pytest

from mailer.models import Status
from mailer.tokens import CONFIRM
from mailer.sending.transport import OutboxTransport


@pytest.fixture
def outbox(tmp_path):
    return OutboxTransport(tmp_path / "outbox")


@pytest.fixture
def web(start_web, outbox):
    return start_web(transport=outbox, web={"subscribe_rate_per_hour": 1000, "confirmations_per_address": 1000})


def _read(outbox, to: str | None) -> list:
    out = []
    for path in sorted(outbox.dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if to is None or msg["To"] == to:
            out.append(msg)
    return out


def mails(web, outbox, to: str | None = None) -> list:
    """The mails in the outbox (to one address). Confirmations go out after the answer:
    wait until the app has finished every request and its after-answer work."""
    web.wait_idle()
    return _read(outbox, to)


def confirm_path(msg, base_url: str) -> str:
    text = msg.get_body(("plain",)).get_content()
    url = re.search(re.escape(base_url) + r"(/confirm/\S+)", text).group(1)
    html = msg.get_body(("html",)).get_content()
    assert base_url + url in html
    return url


def test_subscribe_then_confirm(web, outbox):
    r = web.http.post("/subscribe", data={"email": " New.Reader@Example.COM ", "website": ""})
    assert r.status_code == 200 and "Check your inbox" in r.text
    sub = web.store.get("new.reader@example.com")
    assert sub.status is Status.PENDING and sub.source == "web"
    [msg] = mails(web, outbox)
    assert msg["To"] == sub.email == "New.Reader@Example.COM" and msg["Auto-Submitted"] == "auto-replied"
    link = confirm_path(msg, web.url)
    page = web.http.get(link)
    assert page.status_code == 200 and "Confirm subscription</button>" in page.text
    assert web.store.get_by_id(sub.id).status is Status.PENDING  # GET changes nothing
    done = web.http.post(link)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert web.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert web.store.history(sub.id)[-1].reason == "confirm-link"
    assert web.store.lists_of(sub.id) == ["main"]
    assert web.http.post(link).status_code == 200  # idempotent
    assert len(web.store.history(sub.id)) == 2


def test_confirmation_mail_comes_from_the_campaign_mime_builder(start_web, db_settings, outbox, tmp_path):
    """One MIME builder (sending/message.py): 7-bit headers with the domain as IDNA, CRLF only,
    quoted-printable parts: the same wire form as a campaign message."""
    from mailer.config import with_overrides

    s = with_overrides(db_settings, newsletter={"from_": "Rust-Wochenschau – TWIR <newsletter@this-week-in-rust.org>"})
    web = start_web(transport=outbox, settings=s)
    assert web.http.post("/subscribe", data={"email": "Leser@Bücher.example"}).status_code == 200
    mails(web, outbox)
    [path] = outbox.dir.glob("*.eml")
    raw = path.read_bytes()
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable lines
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["To"] == "Leser@xn--bcher-kva.example" and msg["Auto-Submitted"] == "auto-replied"
    assert str(msg["From"]) == "Rust-Wochenschau – TWIR <newsletter@this-week-in-rust.org>"
    assert {p["Content-Transfer-Encoding"] for p in msg.get_payload()} == {"quoted-printable"}
    assert web.http.post(confirm_path(msg, web.url)).status_code == 200
    assert web.store.get("leser@bücher.example").status is Status.SUBSCRIBED


def test_same_answer_whatever_the_address_state(web, outbox):
    web.add("member@example.com")
    web.add("left@example.com", status=Status.UNSUBSCRIBED)
    web.add("waiting@example.com", status=Status.PENDING)
    bodies = {}
    for addr in ("member@example.com", "left@example.com", "waiting@example.com", "stranger@example.com"):
        r = web.http.post("/subscribe", data={"email": addr})
        bodies[addr] = (r.status_code, r.text)
    assert len(set(bodies.values())) == 1
    assert len(mails(web, outbox)) == 3
    assert mails(web, outbox, "member@example.com") == []  # already subscribed: nothing to confirm
    # A suppressed address stays suppressed until its owner confirms from the mailbox.
    assert web.store.get("left@example.com").status is Status.UNSUBSCRIBED
    web.http.post(confirm_path(mails(web, outbox, "left@example.com")[0], web.url))
    left = web.store.get("left@example.com")
    assert left.status is Status.SUBSCRIBED
    assert [h.new_status for h in web.store.history(left.id)] == [Status.UNSUBSCRIBED, Status.SUBSCRIBED]


def test_multipart_form_and_honeypot(web, outbox):
    r = web.http.post("/subscribe", data={"email": "multi@example.com"}, files={"x": ("", b"")})
    assert r.status_code == 200 and web.store.get("multi@example.com").status is Status.PENDING
    bot = web.http.post("/subscribe", data={"email": "bot-target@example.com", "website": "http://spam"})
    assert bot.status_code == 200 and bot.text == r.text
    assert web.store.get("bot-target@example.com") is None and len(mails(web, outbox)) == 1


def test_a_repeated_field_means_its_first_value_in_either_encoding(web, outbox):
    # Multipart took the last value, urlencoded the first: one request, two readings.
    web.http.post("/subscribe", data={"email": ["first.u@example.com", "last.u@example.com"]})
    web.http.post("/subscribe", data={"email": ["first.m@example.com", "last.m@example.com"]},
                  files={"x": ("", b"")})
    assert {m for m in ("first.u", "last.u", "first.m", "last.m") if web.store.get(f"{m}@example.com")} == {
        "first.u", "first.m"}


@pytest.mark.parametrize("value", ["", "not-an-address", "a@", "@b.com", "x" * 400 + "@example.com", "a b@c.com"])
def test_bad_addresses_get_the_form_again(web, outbox, value):
    r = web.http.post("/subscribe", data={"email": value})
    assert r.status_code == 400 and 'name="email"' in r.text
    assert web.store.count()["pending"] == 0 and mails(web, outbox) == []


def test_rate_limits_per_address_and_per_client(start_web, outbox):
    web = start_web(transport=outbox, web={"subscribe_rate_per_hour": 2, "confirmations_per_address": 5})
    other = httpx.Client(base_url=web.url, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    for _ in range(2):
        assert web.http.post("/subscribe", data={"email": "target@example.com"}).status_code == 200
    assert len(mails(web, outbox, "target@example.com")) == 2
    # Another client cannot mail-bomb the address: same page, no more mail.
    r = other.post("/subscribe", data={"email": "target@example.com"})
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert len(mails(web, outbox, "target@example.com")) == 2
    # The first client has used its allowance.
    r = web.http.post("/subscribe", data={"email": "someone.else@example.com"})
    assert r.status_code == 429 and web.store.get("someone.else@example.com") is None
    assert other.post("/subscribe", data={"email": "third@example.com"}).status_code == 200
    other.close()


def test_resubscribe_from_the_unsubscribe_page(web, outbox):
    sub, token = web.add("back@example.com")
    page = web.http.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert "Subscribe again" in page.text
    r = web.http.post(f"/unsubscribe/{token}/resubscribe")
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert web.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED  # not before confirming
    web.http.post(confirm_path(mails(web, outbox, "back@example.com")[0], web.url))
    assert web.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    reasons = [h.reason for h in web.store.history(sub.id)]
    assert reasons[-2:] == ["unsubscribe-link", "confirm-link"]


def test_bad_confirm_tokens(web, outbox):
    sub, unsub_token = web.add("pending@example.com", status=Status.PENDING)
    signer = web.services.signer
    main = web.store.list_id("main")
    expired = signer.make(CONFIRM, sub.id, main, issued_at=int(time.time()) - 8 * 86400)
    good = signer.confirm_token(sub.id, main)
    for token in (unsub_token, expired, good[:-2], good.replace(".", ".x"), "garbage"):
        assert web.http.get(f"/confirm/{token}").status_code == 400
        assert web.http.post(f"/confirm/{token}").status_code == 400
    assert web.store.get_by_id(sub.id).status is Status.PENDING
    assert web.http.post(f"/confirm/{good}").status_code == 200
    assert web.store.get_by_id(sub.id).status is Status.SUBSCRIBED


class HeldOutbox(OutboxTransport):
    """The outbox transport held up (as a slow SES or SMTP relay would be) until released."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.started = threading.Event()

    def send(self, *args, **kwargs):
        self.started.set()
        assert self.release.wait(30), "never released"
        return super().send(*args, **kwargs)


def test_answer_does_not_wait_for_the_mail(start_web, tmp_path):
    # Otherwise the time to answer tells a subscribed address (no mail) from any other.
    held = HeldOutbox(tmp_path / "held")
    web = start_web(transport=held, web={"subscribe_rate_per_hour": 1000, "confirmations_per_address": 1000})
    web.add("member@example.com")
    try:
        for addr in ("member@example.com", "stranger@example.com"):
            # Answered while the stranger's mail cannot go out: the answer did not wait for it.
            assert web.http.post("/subscribe", data={"email": addr}, timeout=20).status_code == 200
        assert held.started.wait(30) and list(held.dir.glob("*.eml")) == []
    finally:
        held.release.set()
    assert [m["To"] for m in mails(web, held)] == ["stranger@example.com"]


def test_a_later_complaint_outranks_an_older_confirmation_link(web, outbox):
    sub, _ = web.add("changed.mind@example.com", status=Status.PENDING)
    main = web.store.list_id("main")
    old_link = web.services.signer.make(CONFIRM, sub.id, main, issued_at=int(time.time()) - 3600)
    web.store.set_status(sub.id, Status.COMPLAINED, reason="ses-complaint")
    assert web.http.post(f"/confirm/{old_link}").status_code == 400
    assert web.store.get_by_id(sub.id).status is Status.COMPLAINED
    # A link mailed after the complaint (the person asked again) still works.
    fresh = web.services.signer.confirm_token(sub.id, main)
    assert web.http.post(f"/confirm/{fresh}").status_code == 200
    assert web.store.get_by_id(sub.id).status is Status.SUBSCRIBED


def test_a_client_hanging_up_mid_form_is_one_log_line(web, outbox, caplog):
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO):
            web.abandon("/subscribe", b"email=half%40exa")
    finally:
        uvicorn_error.removeHandler(caplog.handler)
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("twir_mail")]
    assert len(lines) == 1 and lines[0].startswith("POST /subscribe 499 ")  # nginx's "client closed request"
    assert sum(web.store.count().values()) == 0 and mails(web, outbox) == []


def test_a_body_trickling_in_is_cut_off(web, outbox, monkeypatch):
    """uvicorn has no time limit on a request body: a client sending a byte now and then would
    hold its connection (and the app's coroutine) for as long as it liked."""
    from mailer.web import context

    monkeypatch.setattr(context, "BODY_SECONDS", 0.5)
    host, port = web.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 1000\r\n\r\nemail=slow")
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.1 408 ")
    web.wait_idle()
    assert sum(web.store.count().values()) == 0 and mails(web, outbox) == []
