"""One-click unsubscribe over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread
import httpx
import pytest

from mailer.models import Status

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def statuses(live, sub_id):
    return [h.new_status for h in live.store.history(sub_id)]


def test_get_shows_a_button_and_changes_nothing(live):
    sub, token = live.add("reader@example.com")
    for _ in range(3):  # scanners prefetch, sometimes repeatedly
        r = live.http.get(f"/unsubscribe/{token}")
        assert r.status_code == 200
        assert "<form method=\"post\"" in r.text and "Unsubscribe</button>" in r.text
        assert "This Week in Rust" in r.text
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert statuses(live, sub.id) == [Status.SUBSCRIBED]
    assert live.http.head(f"/unsubscribe/{token}").status_code == 200


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribes_without_redirect_or_cookies(live, encoding):
    sub, token = live.add("one.click@example.com")
    if encoding == "urlencoded":
        r = live.http.post(f"/unsubscribe/{token}", data=ONE_CLICK)
        assert r.request.headers["content-type"] == "application/x-www-form-urlencoded"
    else:
        r = live.http.post(f"/unsubscribe/{token}", data=ONE_CLICK, files={"x": ("", b"")})
        assert r.request.headers["content-type"].startswith("multipart/form-data")
    assert r.status_code == 200 and "location" not in r.headers and "set-cookie" not in r.headers
    assert "You have been unsubscribed" in r.text
    assert live.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    last = live.store.history(sub.id)[-1]
    assert (last.old_status, last.new_status, last.reason) == (Status.SUBSCRIBED, Status.UNSUBSCRIBED, "unsubscribe-link")
    assert last.detail == "list main"  # `subscribers show` prints it: a list name, not an id
    # The page offers to come back (which needs a fresh confirmation).
    assert f'action="/unsubscribe/{token}/resubscribe"' in r.text


def test_one_click_runs_no_worker_thread(live, monkeypatch):
    """The write runs on the event loop (mailer/store/loopwriter.py): on the busiest path the
    hop to a worker thread and back cost more than the write itself."""
    sub, token = live.add("loop@example.com")
    assert live.http.get(f"/unsubscribe/{token}").status_code == 200  # the list's title, cached
    hops, run_sync = [], anyio.to_thread.run_sync

    async def counted(fn, *args, **kwargs):
        hops.append(fn)
        return await run_sync(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    r = live.http.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert r.status_code == 200 and "You have been unsubscribed" in r.text
    assert hops == []
    assert live.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED


def test_one_click_waits_for_another_sqlite_writer_without_blocking_the_app(live):
    if live.store.dialect != "sqlite":
        pytest.skip("SQLite's database-wide write lock")
    sub, token = live.add("patient@example.com")
    with ThreadPoolExecutor(1) as pool:
        with live.store.transaction():  # BEGIN IMMEDIATE: another writer holds the lock
            answer = pool.submit(httpx.post, f"{live.url}/unsubscribe/{token}", data=ONE_CLICK, timeout=30)
            time.sleep(0.3)
            assert not answer.done()  # waiting for the lock, in a worker thread...
            assert live.http.get("/healthz").status_code == 200  # ...while the app serves others
        assert answer.result(30).status_code == 200
    assert statuses(live, sub.id) == [Status.SUBSCRIBED, Status.UNSUBSCRIBED]


def test_one_click_is_idempotent(live):
    sub, token = live.add("twice@example.com")
    answers = [live.http.post(f"/unsubscribe/{token}", data=ONE_CLICK) for _ in range(4)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert statuses(live, sub.id) == [Status.SUBSCRIBED, Status.UNSUBSCRIBED]


def test_one_click_keeps_stronger_suppression(live):
    sub, token = live.add("gone@example.com")
    live.store.set_status(sub.id, Status.BOUNCED, reason="ses-bounce")
    assert live.http.post(f"/unsubscribe/{token}", data=ONE_CLICK).status_code == 200
    assert live.store.get_by_id(sub.id).status is Status.BOUNCED
    page = live.http.get(f"/unsubscribe/{token}")
    assert "You are not subscribed" in page.text and "Subscribe again" in page.text


def forgeries(live, token: str) -> list[str]:
    body, _, tag = token.partition(".")
    flip = "A" if tag[3] != "A" else "B"
    other = live.services.signer.confirm_token(1, 1)  # right key, wrong purpose
    return [
        token[:-1], token[: len(token) // 2], body, body + ".", "." + tag,
        f"{body}.{tag[:3]}{flip}{tag[4:]}",  # tampered tag
        f"{body[:-2]}{'B' if body[-2] != 'B' else 'C'}{body[-1]}.{tag}",  # tampered payload
        other, "x", "%00", "a.b", "...", "a" * 500, token + "A",
        token + "==", token[:-1] + chr(ord(token[-1]) + 1),  # decode to the same bytes: still refused
    ]


def test_forged_tokens_get_400_and_change_nothing(live):
    sub, token = live.add("victim@example.com")
    pages = set()
    for fake in forgeries(live, token):
        for method in ("GET", "POST"):
            r = live.http.request(method, f"/unsubscribe/{fake}", data=ONE_CLICK if method == "POST" else None)
            assert r.status_code == 400, (fake, method, r.status_code)
            assert "victim" not in r.text and "This link is not valid" in r.text
            pages.add(r.text)
        assert live.http.post(f"/unsubscribe/{fake}/resubscribe").status_code == 400
    assert len(pages) == 1  # one answer for every kind of forgery: nothing to learn from it
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert statuses(live, sub.id) == [Status.SUBSCRIBED]


def test_pages_are_safe_to_serve(live):
    _, token = live.add("headers@example.com")
    r = live.http.get(f"/unsubscribe/{token}")
    assert r.headers["referrer-policy"] == "no-referrer"  # the token must not leak to other sites
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text.lower()


def test_health_and_unknown_pages(live):
    assert live.http.get("/healthz").text == "ok\n"
    r = live.http.get("/no/such/page")
    assert r.status_code == 404 and "Traceback" not in r.text and "Page not found" in r.text
    r = live.http.put("/webhooks/ses", content=b"x")
    assert r.status_code == 405 and "Traceback" not in r.text


def test_a_trailing_slash_redirects_without_trusting_the_host_header(live):
    """Starlette's redirect built its Location from the Host header (`Host: evil.example` got
    `http://evil.example/subscribe`, which a shared cache could serve to everyone)."""
    sub, token = live.add("slash@example.com")
    r = live.http.get("/subscribe/", headers={"Host": "evil.example"})
    assert (r.status_code, r.headers["location"]) == (307, "/subscribe")
    r = live.http.post(f"/unsubscribe/{token}/?utm=x", data={"List-Unsubscribe": "One-Click"})
    assert (r.status_code, r.headers["location"]) == (307, f"/unsubscribe/{token}?utm=x")  # a POST stays one
    assert live.http.post(r.headers["location"], data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert live.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    for path in (b"//evil.example/", b"//subscribe", b"/no/such/page/", b"/subscribe//"):
        r = live.http.get(httpx.URL(live.url).copy_with(raw_path=path))  # sent as written
        assert r.status_code == 404 and "location" not in r.headers, path


def test_wrong_method_names_every_allowed_one(live):
    """RFC 9110: a 405 carries Allow. Several paths have a GET route and a POST route, and
    Starlette's own 405 names only the first one's methods."""
    _, token = live.add("methods@example.com")
    for method, path, allowed in [("PUT", f"/unsubscribe/{token}", "GET, HEAD, POST"),
                                  ("DELETE", "/subscribe", "GET, HEAD, POST"),
                                  ("OPTIONS", "/confirm/x", "GET, HEAD, POST"),
                                  ("GET", "/webhooks/ses", "POST"),
                                  ("PATCH", f"/unsubscribe/{token}/resubscribe", "POST")]:
        r = live.http.request(method, path)
        assert (r.status_code, r.headers.get("allow")) == (405, allowed), (method, path)
        assert r.headers["cache-control"] == "no-store"
    assert live.store.get("methods@example.com").status is Status.SUBSCRIBED


def test_a_client_hanging_up_mid_body_still_unsubscribes_without_a_traceback(live, server_errors):
    """The signed token is the authorisation: the body is not needed, so a dropped connection
    must neither lose the unsubscribe nor log a traceback (it logged two)."""
    sub, token = live.add("flaky.network@example.com")
    live.abandon(f"/unsubscribe/{token}", b"List-Unsubscribe=On")
    assert live.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    assert [r.getMessage() for r in server_errors.records if r.exc_info or r.levelno >= logging.ERROR] == []
