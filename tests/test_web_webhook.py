"""POST /webhooks/ses with SNS messages signed by a test key (certificate served by the injected fetcher)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailer.config import with_overrides
from mailer.models import Status
from mailer.store.schema import campaigns, deliveries, feedback_events, sns_messages
from tests.fixtures.sns import CERT_URL, TOPIC

DATA = Path(__file__).parent / "data" / "ses"
HEADERS = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}


def ses(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def post(live, doc, headers=HEADERS, **kw):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return live.http.post("/webhooks/ses", content=body, headers=headers, **kw)


def count(store, table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def add_delivery(store, sub, message_id: str) -> int:
    now = dt.datetime.now(dt.timezone.utc)
    with store.engine.begin() as conn:
        cid = conn.execute(sa.select(campaigns.c.id)).scalar()
        if cid is None:
            cid = conn.execute(sa.insert(campaigns).values(
                issue_number=600, issue_path="x.md", list_id=store.list_id("main"), subject="s",
                status="done", transport="ses", created_at=now, updated_at=now).returning(campaigns.c.id)).scalar()
        return conn.execute(sa.insert(deliveries).values(
            campaign_id=cid, subscriber_id=sub.id, email=sub.email, status="sent", message_id=message_id,
            sent_at=now).returning(deliveries.c.id)).scalar()


def delivery_event(store, delivery_id):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(deliveries.c.event).where(deliveries.c.id == delivery_id)).scalar()


def test_permanent_bounce_for_several_recipients(live, sns_signer):
    a, _ = live.add("gone@example.com")
    b, _ = live.add("also.gone@example.com")
    bystander, _ = live.add("happy@example.com")
    row = add_delivery(live.store, a, "0100017e-ses-message-1")
    r = post(live, sns_signer.notification(ses("bounce-identity")))
    assert r.status_code == 200, r.text
    for sub in (a, b):
        assert live.store.get_by_id(sub.id).status is Status.BOUNCED
        assert live.store.history(sub.id)[-1].reason == "ses-bounce"
    assert live.store.get_by_id(bystander.id).status is Status.SUBSCRIBED
    assert delivery_event(live.store, row) == "bounce"
    assert count(live.store, feedback_events) == 2


@pytest.mark.parametrize("before", [Status.SUBSCRIBED, Status.UNSUBSCRIBED])
def test_complaint_marks_complained(live, sns_signer, before):
    sub, _ = live.add("angry@example.com", status=before)
    assert post(live, sns_signer.notification(ses("complaint-event"), version="1")).status_code == 200
    assert live.store.get_by_id(sub.id).status is Status.COMPLAINED
    assert live.store.history(sub.id)[-1].reason == "ses-complaint"


def test_transient_bounces_suppress_after_the_limit(start_web, sns_signer):
    live = start_web(sns_fetcher=sns_signer.fetch, transient_bounce_limit=3)
    sub, _ = live.add("full@example.com")
    doc = sns_signer.notification(ses("bounce-event-transient"))
    for i in range(2):
        assert post(live, sns_signer.notification(ses("bounce-event-transient"))).status_code == 200
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert post(live, doc).status_code == 200
    assert post(live, doc).text == "already processed\n"  # a replay is not a fourth bounce
    assert live.store.get_by_id(sub.id).status is Status.BOUNCED
    assert live.store.history(sub.id)[-1].reason == "ses-transient-bounces"
    assert count(live.store, feedback_events) == 3


def test_old_transient_bounces_fall_out_of_the_window(start_web, sns_signer):
    live = start_web(sns_fetcher=sns_signer.fetch, transient_bounce_limit=2, transient_bounce_window_days=7)
    sub, _ = live.add("full@example.com")
    with live.store.engine.begin() as conn:
        conn.execute(sa.insert(feedback_events).values(
            subscriber_id=sub.id, kind="bounce-transient", at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)))
    post(live, sns_signer.notification(ses("bounce-event-transient")))
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED


def test_delivery_reject_and_delay_are_recorded_on_the_delivery_row(live, sns_signer):
    rows = {}
    for name, addr, mid in [("delivery-identity", "happy@example.com", "0100017e-ses-message-4"),
                            ("reject-event", "virus@example.com", "0100017e-ses-message-6"),
                            ("delay-event", "slow@example.com", "0100017e-ses-message-5")]:
        sub, _ = live.add(addr)
        rows[name] = add_delivery(live.store, sub, mid)
        assert post(live, sns_signer.notification(ses(name))).status_code == 200
        assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert [delivery_event(live.store, rows[n]) for n in rows] == ["delivery", "reject", "delivery-delay"]
    # A late delay notice does not hide the delivery that followed it.
    late = ses("delay-event")
    late["mail"]["messageId"] = "0100017e-ses-message-4"
    post(live, sns_signer.notification(late))
    assert delivery_event(live.store, rows["delivery-identity"]) == "delivery"


def test_replay_is_processed_once(live, sns_signer):
    sub, _ = live.add("angry@example.com")
    doc = sns_signer.notification(ses("complaint-event"))
    assert post(live, doc).text.startswith("applied 1")
    live.store.set_status(sub.id, Status.UNSUBSCRIBED, reason="cli")
    assert post(live, doc).text == "already processed\n"
    assert live.store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    assert count(live.store, sns_messages) == 1


def assert_nothing_changed(live, sub):
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert count(live.store, sns_messages) == 0 and count(live.store, feedback_events) == 0


def test_bad_signature_unknown_topic_and_foreign_cert_are_403(live, sns_signer):
    sub, _ = live.add("gone@example.com")
    good = sns_signer.notification(ses("bounce-identity"))
    tampered = dict(good, Message=good["Message"].replace("Permanent", "Permanent "))
    other_topic = sns_signer.notification(ses("bounce-identity"), topic="arn:aws:sns:us-east-1:999999999999:evil")
    foreign = sns_signer.notification(ses("bounce-identity"), cert_url="https://sns.evil.example.com/cert.pem")
    lookalike = sns_signer.notification(ses("bounce-identity"),
                                        cert_url="https://sns.us-east-1.amazonaws.com.evil.example/c.pem")
    plain_http = sns_signer.notification(ses("bounce-identity"), cert_url=CERT_URL.replace("https", "http"))
    garbage_sig = dict(good, Signature=base64.b64encode(b"\0" * 256).decode())
    for doc in (tampered, other_topic, foreign, lookalike, plain_http, garbage_sig, dict(good, SignatureVersion="3")):
        r = post(live, doc)
        assert r.status_code == 403, r.text
    assert all(u == CERT_URL for u in sns_signer.fetched)  # never fetched from elsewhere
    assert_nothing_changed(live, sub)


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"Type": "Notification"}', b"\xff\xfe", b'{"Type": "Spam", "MessageId": "x"}',
    # A lone surrogate escape is valid JSON but no UTF-8 text: it was a 500 with a traceback.
    b'{"Type": "Notification", "MessageId": "\\ud800", "TopicArn": "a", "Timestamp": "t", "Signature": "s", '
    b'"SigningCertURL": "u", "SignatureVersion": "1", "Message": "x"}',
])
def test_malformed_bodies_are_400(live, body):
    sub, _ = live.add("gone@example.com")
    assert post(live, body).status_code == 400
    assert_nothing_changed(live, sub)


def test_message_object_and_header_mismatch_are_400(live, sns_signer):
    sub, _ = live.add("gone@example.com")
    good = sns_signer.notification(ses("bounce-identity"))
    assert post(live, dict(good, Message=ses("bounce-identity"))).status_code == 400
    assert post(live, good, headers={**HEADERS, "x-amz-sns-message-type": "SubscriptionConfirmation"}).status_code == 400
    assert post(live, b"x" * (300 * 1024)).status_code == 413
    assert post(live, b"[" * 100_000 + b"]" * 100_000).status_code == 400
    # malformed is 400 even when the topic is unknown too (shape is checked before the 403 checks)
    assert post(live, dict(good, Message=5, TopicArn="arn:aws:sns:us-east-1:1:other")).status_code == 400
    for cert in ("https://sns.us-east-1.amazonaws.com:abc/c.pem", "https://sns.s3-external-1.amazonaws.com/c.pem"):
        assert post(live, dict(good, SigningCertURL=cert)).status_code == 403
    assert_nothing_changed(live, sub)


def test_subscription_confirmation_only_after_verification(start_web, db_settings, sns_signer, moto):
    """Confirmed through SNS's ConfirmSubscription API (moto), never by fetching the SubscribeURL."""
    moto.client("sns").create_topic(Name=TOPIC.rsplit(":", 1)[1])  # moto's account: the same ARN
    live = start_web(sns_fetcher=sns_signer.fetch,
                     settings=with_overrides(db_settings, ses={"endpoint_url": moto.url}))
    url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=t&Token=abc"
    headers = {**HEADERS, "x-amz-sns-message-type": "SubscriptionConfirmation"}
    doc = sns_signer.confirmation(url)
    assert post(live, dict(doc, Token="forged"), headers=headers).status_code == 403
    evil = sns_signer.confirmation("https://evil.example.com/?Action=ConfirmSubscription")
    r = post(live, doc, headers=headers)
    assert r.status_code == 200 and r.text == "subscription confirmed\n"
    assert post(live, evil, headers=headers).status_code == 200  # the URL is not used at all
    assert not [u for u in sns_signer.fetched if "ConfirmSubscription" in u or "evil" in u]


def test_basic_auth(start_web, db_settings, sns_signer):
    s = dataclasses.replace(db_settings, webhook_password="s3cret-pw")
    live = start_web(sns_fetcher=sns_signer.fetch, settings=s, basic_auth_user="sns")
    sub, _ = live.add("angry@example.com")
    doc = sns_signer.notification(ses("complaint-event"))
    r = post(live, doc)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert post(live, doc, auth=("sns", "wrong")).status_code == 401
    assert post(live, doc, headers={**HEADERS, "authorization": "Basic !!!"}).status_code == 401
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert post(live, doc, auth=("sns", "s3cret-pw")).status_code == 200
    assert live.store.get_by_id(sub.id).status is Status.COMPLAINED


def test_basic_auth_user_without_password_refuses_everything(start_web, sns_signer):
    live = start_web(sns_fetcher=sns_signer.fetch, basic_auth_user="sns")  # no TWIR_MAIL_WEBHOOK_PASSWORD
    sub, _ = live.add("angry@example.com")
    doc = sns_signer.notification(ses("complaint-event"))
    for auth in (None, ("sns", ""), ("sns", "x")):
        assert post(live, doc, auth=auth).status_code == 401
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED


def test_failed_subscription_confirmation_is_502_so_sns_retries(start_web, db_settings, sns_signer, moto):
    # The topic does not exist at SNS (moto): ConfirmSubscription fails, SNS must try again later.
    live = start_web(sns_fetcher=sns_signer.fetch,
                     settings=with_overrides(db_settings, ses={"endpoint_url": moto.url}))
    doc = sns_signer.confirmation("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x")
    r = post(live, doc, headers={**HEADERS, "x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert r.status_code == 502 and "Traceback" not in r.text
    # What AWS said (it may name the account, the role, the missing permission) is for the log only.
    assert r.text == "cannot confirm subscription, try again later\n"


def test_database_failure_during_a_notification_is_a_503_and_applies_nothing(live, sns_signer):
    # The store's error mapping covers feedback writes too: a clean 503 (SNS retries), no raw driver error.
    sub, _ = live.add("gone@example.com")
    with live.store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE feedback_events RENAME TO feedback_events_away")
    try:
        r = post(live, sns_signer.notification(ses("bounce-identity")))
    finally:
        with live.store.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE feedback_events_away RENAME TO feedback_events")
    assert r.status_code == 503 and "Traceback" not in r.text
    assert_nothing_changed(live, sub)
