"""Issue 11: the subscribe limits hold under concurrency and over a long window; events order exactly."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from mailer.models import Status
from mailer.sending.transport import OutboxTransport
from mailer.store.engine import utcnow
from mailer.tokens import CONFIRM
from tests.test_web_subscribe import confirm_path, mails

HOUR = dt.timedelta(hours=1)


def test_rate_hit_is_atomic_under_concurrency(store):
    barrier = threading.Barrier(24)

    def hit(_):
        barrier.wait()
        return not store.rate_hit({"sub-client:198.51.100.7": (5, HOUR)})

    with ThreadPoolExecutor(24) as pool:
        allowed = sum(pool.map(hit, range(24)))
    assert allowed == 5


@pytest.fixture
def outbox(tmp_path):
    return OutboxTransport(tmp_path / "outbox")


def test_24_concurrent_requests_from_one_client_get_exactly_the_limit(start_web, outbox):
    web = start_web(transport=outbox, web={"subscribe_rate_per_hour": 5})
    barrier = threading.Barrier(24)

    def post(i):
        with httpx.Client(base_url=web.url, timeout=60) as client:
            barrier.wait()
            return client.post("/subscribe", data={"email": f"burst{i}@example.com"}).status_code

    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(post, range(24)))
    assert sorted(codes) == [200] * 5 + [429] * 19
    assert web.store.count()["pending"] == 5


def test_one_address_gets_one_confirmation_a_month(start_web, outbox):
    """The mail says "if you did not ask for this ... we will not write again": the hourly limit
    alone let about 120 mails a day reach one victim."""
    web = start_web(transport=outbox, web={"subscribe_rate_per_hour": 1000})
    clients = [httpx.Client(base_url=web.url, transport=httpx.HTTPTransport(local_address=f"127.0.0.{i}"))
               for i in range(2, 6)]
    for client in clients:
        r = client.post("/subscribe", data={"email": "victim@example.com"})
        assert r.status_code == 200 and "Check your inbox" in r.text  # same answer: nothing revealed
        client.close()
    assert len(mails(web, outbox, "victim@example.com")) == 1
    digest = web.store.email_hash("victim@example.com")
    rules = {f"sub-addr-long:{digest}": (1, dt.timedelta(days=30))}
    assert web.store.rate_hit(rules, now=utcnow() + dt.timedelta(days=29)) == set(rules)
    assert web.store.rate_hit(rules, now=utcnow() + dt.timedelta(days=31)) == set()


@pytest.fixture
def web(start_web, outbox):
    return start_web(transport=outbox, web={"subscribe_rate_per_hour": 1000, "confirmations_per_address": 1000})


def test_unsubscribe_right_after_a_confirmation_link_wins(web, outbox):
    """A link issued a fraction of a second before an unsubscribe must not re-subscribe."""
    sub, _ = web.add("quick@example.com")
    main = web.store.list_id("main")
    link = web.services.signer.confirm_token(sub.id, main)
    web.store.set_status(sub.id, Status.UNSUBSCRIBED, reason="unsubscribe-link")  # milliseconds later
    r = web.http.post(f"/confirm/{link}")
    assert r.status_code == 400 and web.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    # Asked for again after leaving: that link is newer than the "stop" and works.
    r = web.http.post("/subscribe", data={"email": "quick@example.com"})
    web.http.post(confirm_path(mails(web, outbox, "quick@example.com")[0], web.url))
    assert web.store.get_by_id(sub.id).status is Status.SUBSCRIBED


def test_links_mailed_with_whole_seconds_still_work(web):
    sub = web.store.add("older@example.com", status=Status.PENDING)
    main = web.store.list_id("main")
    import time

    old_style = web.services.signer.make(CONFIRM, sub.id, main, issued_at=int(time.time()), version=1)
    assert web.services.signer.verify(old_style, CONFIRM).version == 1
    assert web.http.post(f"/confirm/{old_style}").status_code == 200
    assert web.store.get_by_id(sub.id).status is Status.SUBSCRIBED


def test_prune_drops_aged_rate_events_and_sns_ids(store):
    now = utcnow()
    store.rate_hit({"sub-client:old": (5, HOUR)}, now=now - dt.timedelta(days=40))
    store.rate_hit({"sub-client:new": (5, HOUR)}, now=now)
    assert store.claim_sns_message("old-id", now - dt.timedelta(days=10))
    assert store.claim_sns_message("new-id", now)
    assert store.prune_web_tables(rate_older_than=dt.timedelta(days=31), sns_older_than=dt.timedelta(days=7),
                                  now=now) == (1, 1)
    assert store.claim_sns_message("old-id", now)  # forgotten: could be claimed again
    assert not store.claim_sns_message("new-id", now)
    assert store.rate_hit({"sub-client:new": (1, HOUR)}, now=now) == {"sub-client:new"}
