"""Issue 11: SNS subscriptions confirmed through the API with authenticated unsubscribe, the
message-id header checked, failed certificate fetches cached briefly."""

from __future__ import annotations

import datetime as dt

import pytest

from mailer.aws import client as aws_client
from mailer.aws.sns import MAX_MESSAGE_AGE, SnsVerifier
from mailer.config import with_overrides
from mailer.errors import WebhookError
from mailer.models import Status
from mailer.store.schema import sns_messages
from mailer.web.context import SNS_ID_KEEP
from tests.fixtures.sns import TOPIC
from tests.test_web_webhook import HEADERS, count, post, ses


@pytest.fixture
def calls(monkeypatch):
    """The parameters of every SNS call the app makes (the calls themselves go to moto)."""
    seen: list[tuple[str, dict]] = []
    real = aws_client.client

    def recording(settings, service, **kw):
        built = real(settings, service, **kw)
        built.meta.events.register("provide-client-params.sns.*",
                                   lambda params, model, **_: seen.append((model.name, dict(params))))
        return built

    monkeypatch.setattr(aws_client, "client", recording)
    return seen


def test_confirmation_uses_confirm_subscription_with_authenticated_unsubscribe(start_web, db_settings,
                                                                                sns_signer, moto, calls):
    sns = moto.client("sns")
    sns.create_topic(Name=TOPIC.rsplit(":", 1)[1])
    live = start_web(sns_fetcher=sns_signer.fetch, settings=with_overrides(db_settings, ses={"endpoint_url": moto.url}))
    doc = sns_signer.confirmation("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=t")
    r = post(live, doc, headers={**HEADERS, "x-amz-sns-message-type": "SubscriptionConfirmation"})
    assert r.status_code == 200
    assert calls == [("ConfirmSubscription", {"TopicArn": TOPIC, "Token": doc["Token"],
                                               "AuthenticateOnUnsubscribe": "true"})]


def test_message_id_header_must_match_the_body(live, sns_signer):
    sub, _ = live.add("complainer@example.com")
    doc = sns_signer.notification(ses("complaint-event"))
    r = post(live, doc, headers={**HEADERS, "x-amz-sns-message-id": "another-id"})
    assert r.status_code == 400 and "x-amz-sns-message-id" in r.text
    assert live.store.get_by_id(sub.id).status.value == "subscribed"
    assert post(live, doc, headers={**HEADERS, "x-amz-sns-message-id": doc["MessageId"]}).status_code == 200


def test_failed_certificate_fetches_are_cached_briefly(settings, sns_signer, monkeypatch):
    asked: list[str] = []

    def down(url: str) -> bytes:
        asked.append(url)
        raise TimeoutError("no answer")

    verifier = SnsVerifier(with_overrides(settings, webhook={"topic_arns": [TOPIC]}), fetcher=down)
    doc = sns_signer.notification(ses("complaint-event"))
    for _ in range(5):
        with pytest.raises(WebhookError, match="cannot load signing certificate: TimeoutError"):
            verifier.verify(doc)
    assert len(asked) == 1  # one fetch, not one per message
    from mailer.aws import sns as sns_module

    clock = [sns_module.time.monotonic() + sns_module.FAILED_FETCH_TTL + 1]
    monkeypatch.setattr(sns_module.time, "monotonic", lambda: clock[0])
    verifier.fetcher = sns_signer.fetch  # back up: after the pause it is fetched again
    assert verifier.verify(doc) is doc


def test_a_replay_older_than_the_kept_message_ids_is_refused(live, sns_signer):
    """MessageIds are forgotten after SNS_ID_KEEP: a genuine notification replayed later must not be
    applied again (e.g. an old complaint re-suppressing a reader who has since confirmed again)."""
    sub, _ = live.add("angry@example.com")
    old = dt.datetime.now(dt.timezone.utc) - SNS_ID_KEEP
    r = post(live, sns_signer.notification(ses("complaint-event"), timestamp=old))
    assert r.status_code == 403
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert count(live.store, sns_messages) == 0
    recent = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)  # within SNS's retries
    assert post(live, sns_signer.notification(ses("complaint-event"), timestamp=recent)).status_code == 200
    assert live.store.get_by_id(sub.id).status is Status.COMPLAINED


def test_sns_id_keep_outlasts_the_accepted_message_age():
    assert SNS_ID_KEEP >= MAX_MESSAGE_AGE + dt.timedelta(hours=12)  # margin for clock skew


def test_an_old_timestamp_is_refused_before_any_certificate_fetch(live, sns_signer):
    """A made-up old Timestamp cost a fetch (a worker thread held up to its timeout) before
    the age check refused it; the certificate is fetched only for a message that could pass."""
    fetched_before = len(sns_signer.fetched)
    old = dt.datetime.now(dt.timezone.utc) - MAX_MESSAGE_AGE - dt.timedelta(hours=1)
    doc = sns_signer.notification(ses("complaint-event"), timestamp=old,
                                  cert_url="https://sns.us-east-1.amazonaws.com/never-fetched.pem")
    assert post(live, doc).status_code == 403
    assert len(sns_signer.fetched) == fetched_before
