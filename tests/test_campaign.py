"""Campaign ledger and send loop, in process, on SQLite and PostgreSQL, against moto."""

from __future__ import annotations

from email import message_from_bytes
from email.utils import parseaddr

import email
import time
from dataclasses import replace
from email import policy

import pytest
import sqlalchemy as sa

from mailer.sending import campaign as cmp

from mailer.config import with_overrides
from mailer.errors import CampaignError, ConfigError
from mailer.models import CampaignStatus, Claim, Status
from mailer.tokens import UNSUBSCRIBE, Signer
from mailer.sending.transport import open_transport
from tests.fixtures.send import FaultInjector, add_subscribers, make_rendered

BASE = "https://twir-mail.example.org"
SECRET = "s3cret-for-tests-0123456789"


@pytest.fixture
def ses(db_settings, moto):
    s = with_overrides(db_settings, transport={"kind": "ses"}, web={"base_url": BASE},
                       ses={"endpoint_url": moto.url}, send={"workers": 4})
    return replace(s, secret_key=SECRET)


def run(store, s, *, rendered=None, rate=None, transport=None, list_name="main", **kw):
    rendered = rendered or make_rendered()
    transport = transport or open_transport(s)
    c = cmp.start(store, rendered, s, transport, list_name=list_name, **kw)
    return cmp.deliver(store, c, rendered, transport, s, rate=rate)


def by_recipient(moto) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in moto.sent_messages():
        msg = email.message_from_string(m["raw_data"], policy=policy.default)
        out.setdefault(str(msg["To"]), []).append((m, msg))
    return out


def test_every_recipient_gets_exactly_one_correct_message(store, ses, moto):
    subs = add_subscribers(store, 30)
    store.add("left@example.com")
    store.set_status(store.get("left@example.com").id, Status.UNSUBSCRIBED, reason="cli")
    report = run(store, ses, rate=500)
    assert report.status == CampaignStatus.DONE and report.counts["sent"] == 30 == report.progress.sent
    got = by_recipient(moto)
    assert sorted(got) == sorted(s.email for s in subs)
    signer, list_id = Signer(SECRET), store.list_id("main")
    ids = ledger_ids(store, report.campaign.id)
    for sub in subs:
        [(raw, msg)] = got[sub.email]
        lu = raw["raw_data"].split("List-Unsubscribe: ", 1)[1].split("\r\n", 1)[0]
        assert "=?" not in lu and lu.startswith(f"<{BASE}/unsubscribe/") and lu.endswith(">")
        token = lu[len(f"<{BASE}/unsubscribe/"):-1]
        data = signer.verify(token, UNSUBSCRIBE)
        assert (data.subscriber_id, data.list_id) == (sub.id, list_id)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Subject"] == "This Week in Rust 600" and msg["Message-ID"] and msg["Date"]
        text, html = msg.get_payload()
        assert lu[1:-1] in text.get_content() and lu[1:-1] in html.get_content()
        assert ids[sub.email] == raw["id"]  # the SES MessageId is in the ledger


def ledger_ids(store, cid) -> dict[str, str]:
    import sqlalchemy as sa
    from mailer.store.schema import deliveries as D
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(D.c.email, D.c.message_id).where(D.c.campaign_id == cid)).all())


def test_throttling_is_retried_to_completion(store, ses, moto):
    add_subscribers(store, 20)
    transport = open_transport(ses)
    inj = FaultInjector(count=10).install(transport.client)  # the next 10 requests: 429
    report = run(store, ses, transport=transport, rate=200)
    assert inj.injected == 10
    assert report.progress.retries == 10  # each one retried by the campaign (paced, with backoff)
    assert (report.counts["sent"], report.counts["failed"]) == (20, 0)
    assert sorted(len(v) for v in by_recipient(moto).values()) == [1] * 20


def test_throttled_retries_keep_to_the_rate_in_every_second(store, ses, moto, monkeypatch):
    """Every SendEmail request (retries included) goes through the pacer: none beyond the rate
    in any 1 s window of its grants."""
    import random
    import threading

    from tests.fixtures.send import aws_error
    from tests.fixtures.send import RecordingLimiter, max_in_window

    limiters = []

    def recording(*args, **kw):
        limiters.append(RecordingLimiter(*args, **kw))
        return limiters[-1]

    monkeypatch.setattr("mailer.sending.campaign.sender.RateLimiter", recording)
    add_subscribers(store, 200)
    s = with_overrides(ses, send={"workers": 8})  # enough workers to keep the pipe full while some retry
    transport = open_transport(s)
    requests, lock, rng = [0], threading.Lock(), random.Random(4)

    def throttle_some(request, **kw):
        with lock:
            requests[0] += 1
            if rng.random() < 0.3:
                return aws_error(429, "TooManyRequestsException")
        return None

    transport.client.meta.events.register("before-send.sesv2.SendEmail", throttle_some)
    report = run(store, s, transport=transport, rate=40)
    [limiter] = limiters
    # One grant per request (no unpaced retry), and the grants keep to the rate exactly; judged
    # on the pacer's own clock, so a loaded machine's scheduling jitter does not enter into it.
    assert requests[0] == len(limiter.grants)
    assert max_in_window(sorted(limiter.grants)) <= 40
    assert (report.counts["sent"], report.counts["failed"]) == (200, 0) and report.progress.retries >= 20


def test_message_rejected_fails_that_recipient_only(store, ses, moto):
    add_subscribers(store, 10)
    transport = open_transport(ses)
    FaultInjector(status=400, code="MessageRejected", match=b'"reader004@example.com"').install(transport.client)
    report = run(store, ses, transport=transport)
    assert (report.counts["sent"], report.counts["failed"]) == (9, 1)
    assert report.status == CampaignStatus.DONE
    [(addr, status, error)] = store.delivery_failures(report.campaign.id)
    assert addr == "reader004@example.com" and status == "failed" and "MessageRejected" in error
    assert "reader004@example.com" not in by_recipient(moto)


def test_sending_paused_pauses_then_resume_sends_the_rest(store, ses, moto):
    add_subscribers(store, 12)
    transport = open_transport(ses)
    inj = FaultInjector(status=400, code="SendingPausedException", count=1).install(transport.client)
    report = run(store, ses, transport=transport, rate=50)
    assert report.status == CampaignStatus.PAUSED and "SendingPausedException" in report.reason
    assert report.counts["sending"] == 0 and report.counts["failed"] == 0
    campaign, requeued = cmp.resume(store, report.campaign.id)
    assert requeued == 0
    again = cmp.deliver(store, campaign, make_rendered(), transport, ses, rate=50)
    assert again.status == CampaignStatus.DONE and again.counts["sent"] == 12
    assert sorted(len(v) for v in by_recipient(moto).values()) == [1] * 12
    assert inj.injected == 1
    with pytest.raises(CampaignError, match="complete"):
        cmp.resume(store, report.campaign.id)


def test_consecutive_failures_pause_the_campaign(store, ses, moto):
    add_subscribers(store, 20)
    s = with_overrides(ses, send={"max_consecutive_failures": 3, "workers": 1})
    transport = open_transport(s)
    FaultInjector(status=400, code="MessageRejected", count=100).install(transport.client)
    report = run(store, s, transport=transport)
    assert report.status == CampaignStatus.PAUSED and "3 failures in a row" in report.reason
    assert report.counts["failed"] == 3 and report.counts["queued"] == 17, (report.progress, report.counts)


def test_second_send_refused_and_test_sends_are_separate(store, settings, db_settings, tmp_path):
    add_subscribers(store, 3)
    add_subscribers(store, 2, list_name="preview", prefix="editor")
    transport = open_transport(db_settings)
    test = run(store, db_settings, list_name="preview", test=True)
    assert test.counts["sent"] == 2 and test.campaign.kind == "test"
    assert test.campaign.subject == "[TEST] This Week in Rust 600"
    adhoc = run(store, db_settings, list_name=None, test=True, addresses=["me@example.org", "you@example.org"])
    assert adhoc.counts["sent"] == 2
    # an editor named with --to who is also on the preview list (or typed twice) gets one message
    both = run(store, db_settings, list_name="preview", test=True,
               addresses=["Editor000@Example.com", "me@example.org", "ME@example.org"])
    assert both.counts["sent"] == 3
    real = run(store, db_settings)
    assert real.counts["sent"] == 3
    with pytest.raises(CampaignError, match="already sent"):
        cmp.start(store, make_rendered(), db_settings, transport, list_name="main")
    # still possible after the real send, and any number of times
    assert run(store, db_settings, list_name="preview", test=True).counts["sent"] == 2
    files = list(db_settings.outbox_dir.glob("*.eml"))
    assert len(files) == 2 + 2 + 3 + 3 + 2
    assert sum(b"Subject: [TEST] " in f.read_bytes() for f in files) == 9


def test_unsubscribe_during_send_is_honoured(store, db_settings):
    subs = add_subscribers(store, 40)
    late = subs[-10:]
    rendered, transport = make_rendered(), open_transport(db_settings)
    c = cmp.start(store, rendered, db_settings, transport, list_name="main")
    seen = []

    def on_progress(p):
        if p.sent >= 5 and not seen:
            seen.append(p.sent)
            for sub in late:
                store.set_status(sub.id, Status.UNSUBSCRIBED, reason="unsubscribe-link")

    report = cmp.deliver(store, c, rendered, transport, db_settings, rate=40, on_progress=on_progress)
    assert seen and report.counts["skipped"] == 10 and report.counts["sent"] == 30
    sent_to = {parseaddr(message_from_bytes(f.read_bytes())["To"])[1]
               for f in db_settings.outbox_dir.glob("*.eml")}  # file names do not name recipients
    assert not sent_to & {s.email for s in late}
    assert all(why == "subscriber is unsubscribed" for _, _, why in store.delivery_failures(c.id))


def test_pacing_keeps_to_the_rate(store, db_settings):
    add_subscribers(store, 30)
    report = run(store, db_settings, rate=20)
    # 30 messages at 20/s: the first second's 20, then 10 more at 1/20 s spacing. Only the lower
    # bound is this test's: a loaded machine may run late (throughput is test_pacing's, on a fake clock).
    assert report.counts["sent"] == 30
    assert report.progress.elapsed >= 1.3


def test_real_transport_refused_without_secret(store, db_settings, moto):
    add_subscribers(store, 1)
    s = with_overrides(db_settings, transport={"kind": "ses"}, ses={"endpoint_url": moto.url})
    with pytest.raises(ConfigError, match="TWIR_MAIL_SECRET_KEY"):
        cmp.start(store, make_rendered(), s, open_transport(s), list_name="main")
    assert store.campaigns() == []


def test_campaign_through_smtp_with_454_throttling(store, db_settings, smtp_server):
    subs = add_subscribers(store, 8)
    s = with_overrides(db_settings, transport={"kind": "smtp"}, web={"base_url": BASE},
                       smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "none"})
    s = replace(s, secret_key=SECRET)
    smtp_server.handler.fail_next = 3  # "454 Throttling failure" three times: retried, not failed
    report = run(store, s, rate=100)
    assert (report.counts["sent"], report.counts["failed"], report.progress.retries) == (8, 0, 3)
    got = sorted(r for m in smtp_server.messages for r in m.recipients)
    assert got == sorted(x.email for x in subs)
    assert all(b"List-Unsubscribe: <https://twir-mail.example.org/unsubscribe/" in m.data
               for m in smtp_server.messages)


def test_bounced_forgotten_and_removed_recipients_are_skipped(store, db_settings):
    subs = add_subscribers(store, 6)
    rendered, transport = make_rendered(), open_transport(db_settings)
    c = cmp.start(store, rendered, db_settings, transport, list_name="main")  # all 6 frozen
    store.set_status(subs[1].id, Status.BOUNCED, reason="ses-bounce")
    store.forget(subs[2].email)
    with store.engine.begin() as conn:  # left the list without changing status
        conn.execute(sa.text("DELETE FROM list_members WHERE subscriber_id = :s"), {"s": subs[3].id})
    report = cmp.deliver(store, c, rendered, transport, db_settings, rate=None)
    assert (report.counts["sent"], report.counts["skipped"]) == (3, 3)
    reasons = sorted(why for _, _, why in store.delivery_failures(c.id))
    assert reasons == ["address was forgotten", "subscriber is bounced", "subscriber left the list"]
    assert report.status == CampaignStatus.DONE


def test_a_retry_is_reported_as_a_named_value_not_an_empty_outcome(store, db_settings, smtp_server):
    """Workers report `RETRYING` for each retry and one `Finished` per claimed row."""
    from mailer.sending.campaign.sender import RETRYING, Finished, Sender
    from mailer.sending.message import MessageTemplate

    [sub] = add_subscribers(store, 1)
    s = with_overrides(db_settings, transport={"kind": "smtp"}, web={"base_url": BASE},
                       smtp={"host": "127.0.0.1", "port": smtp_server.port, "security": "none"})
    s = replace(s, secret_key=SECRET)
    rendered, transport = make_rendered(), open_transport(s)
    campaign = cmp.start(store, rendered, s, transport, list_name="main")
    sender = Sender(store, campaign, MessageTemplate(rendered, s), transport, s, rate=100, workers=1)
    smtp_server.handler.fail_next = 2  # "454 Throttling failure" twice, then accepted
    done = sender._deliver(Claim(delivery_id=7, subscriber_id=sub.id, email=sub.email))
    transport.close()
    assert [sender.results.get_nowait() for _ in range(2)] == [RETRYING, RETRYING] and sender.results.empty()
    assert isinstance(done, Finished) and done.pause is None
    assert (done.outcome.delivery_id, done.outcome.status) == (7, "sent")


def test_progress_and_summary_report_the_same_rate(store, db_settings):
    """The bar's last figure and the summary printed after it are one measurement, not two."""
    add_subscribers(store, 12)
    rendered, transport = make_rendered(), open_transport(db_settings)
    c = cmp.start(store, rendered, db_settings, transport, list_name="main")
    shown = []
    report = cmp.deliver(store, c, rendered, transport, db_settings, rate=None,
                         on_progress=lambda p: shown.append((p.sent, p.rate)))
    assert shown[-1] == (12, report.progress.rate) and report.progress.rate > 0
    first = report.progress.elapsed
    time.sleep(0.01)
    assert report.progress.elapsed == first > 0  # stopped with the run: it no longer grows
