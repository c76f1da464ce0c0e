"""SES feedback through SQS (moto's server): both envelope shapes, both event shapes, replay
protection shared with the webhook, delete-after-apply, unparsable messages left on the queue."""

from __future__ import annotations

import json
import uuid

import pytest

from mailer.config import with_overrides
from mailer.errors import StoreError
from mailer.feedback.events import NotAnSesEvent
from mailer.feedback.queue import FeedbackQueue, decode
from mailer.models import Status
from tests.fixtures.sqs import ses_event


def queue_settings(settings, moto, route, **feedback):
    return with_overrides(settings, ses={"endpoint_url": moto.url},
                          feedback={"queue_url": route.queue_url, "visibility_timeout": 30, **feedback})


def test_decode_both_envelopes_and_both_shapes():
    event = ses_event("Bounce", "a@example.com", "ses-1", shape="notificationType")
    key, events = decode(json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(event)}),
                         "sqs-1")
    assert key == "sns-1" and [(e.kind.value, e.address, e.permanent_bounce) for e in events] == [
        ("bounce", "a@example.com", True)]
    key, events = decode(json.dumps(ses_event("Complaint", "b@example.com", "ses-2")), "sqs-2")
    assert key == "sqs:sqs-2" and [(e.kind.value, e.message_id) for e in events] == [("complaint", "ses-2")]
    for junk in ("not json", "[]", '{"hello": 1}', json.dumps({"Type": "Notification", "MessageId": "x",
                                                                 "Message": "plain text"})):
        with pytest.raises(NotAnSesEvent):
            decode(junk, "sqs-3")


def test_poll_applies_deletes_and_leaves_the_unparsable(store, db_settings, moto, feedback_route):
    settings = queue_settings(db_settings, moto, feedback_route)
    bounced, complained, delayed = (store.add(f"{n}@example.com") for n in ("gone", "angry", "slow"))
    feedback_route.publish(ses_event("Bounce", bounced.email, "m-1"))  # through SNS: an envelope
    feedback_route.put_raw(json.dumps(ses_event("Complaint", complained.email, "m-2", shape="notificationType")))
    feedback_route.put_raw(json.dumps(ses_event("Bounce", delayed.email, "m-3", bounce_type="Transient")))
    feedback_route.put_raw("<html>502 Bad Gateway</html>")
    result = FeedbackQueue(store, settings).drain()
    assert (result.received, result.applied, result.repeated, result.events) == (4, 3, 0, 3)
    assert len(result.bad) == 1 and "not JSON" in result.bad[0]
    assert store.get(bounced.email).status is Status.BOUNCED
    assert store.get(complained.email).status is Status.COMPLAINED
    assert store.get(delayed.email).status is Status.SUBSCRIBED  # one transient bounce: counted only
    # Applied ones are gone; the unparsable one is still there (in flight until its visibility timeout).
    assert feedback_route.counts() == (0, 1)


def test_a_redelivered_notification_is_applied_once(store, db_settings, moto, feedback_route):
    """SQS delivers at least once, and the webhook may have seen the same SNS MessageId."""
    settings = queue_settings(db_settings, moto, feedback_route)
    sub = store.add("twice@example.com")
    envelope = json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()),
                           "Message": json.dumps(ses_event("Bounce", sub.email, "m-9", bounce_type="Transient"))})
    feedback_route.put_raw(envelope)
    feedback_route.put_raw(envelope)
    result = FeedbackQueue(store, settings).drain()
    assert (result.applied, result.repeated) == (1, 1) and feedback_route.counts() == (0, 0)
    assert store.count_feedback(sub.id, "bounce-transient", store.history(sub.id)[0].at) == 1


def test_a_database_failure_leaves_the_message_for_later(store, db_settings, moto, feedback_route, monkeypatch):
    settings = queue_settings(db_settings, moto, feedback_route, visibility_timeout=1)
    sub = store.add("later@example.com")
    feedback_route.publish(ses_event("Complaint", sub.email, "m-5"))

    def down(*a, **k):
        raise StoreError("database error: server closed the connection unexpectedly")

    with monkeypatch.context() as m:
        m.setattr(store, "log_feedback", down)
        with pytest.raises(StoreError):
            FeedbackQueue(store, settings).poll_once(wait_seconds=0)
    # Not deleted: still in flight, or visible again if this machine took over a second
    # (the visibility timeout) to get here (seen under a loaded parallel test run).
    assert store.get(sub.email).status is Status.SUBSCRIBED and sum(feedback_route.counts()) == 1
    result = FeedbackQueue(store, settings).drain(wait_seconds=2)  # back after the visibility timeout
    assert result.applied == 1 and store.get(sub.email).status is Status.COMPLAINED


def test_feedback_poll_cli(store, store_url, moto, feedback_route, run_cli):
    sub = store.add("cli@example.com")
    feedback_route.publish(ses_event("Bounce", sub.email, "m-7"))
    feedback_route.put_raw("{}")
    env = {"TWIR_MAIL_DATABASE_URL": store_url, "TWIR_MAIL_SES_ENDPOINT_URL": moto.url,
           "TWIR_MAIL_FEEDBACK_QUEUE_URL": feedback_route.queue_url}
    r = run_cli("feedback", "poll", "--once", env=env)
    assert r.code == 0, r.err
    assert "received 2 message(s): applied 1 (1 event(s)), 0 already applied, 1 unparsable" in r.out
    assert "left for the queue's dead-letter policy" in r.err and "Traceback" not in r.err
    assert store.get(sub.email).status is Status.BOUNCED
    missing = run_cli("feedback", "poll", "--once", env={"TWIR_MAIL_DATABASE_URL": store_url})
    assert missing.code == 2 and missing.err.strip().startswith("error: feedback.queue_url is empty")
