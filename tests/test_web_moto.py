"""End to end through moto's server: SES sends to the simulator addresses, moto's SNS signs the
feedback notification and POSTs it to the running app, which fetches moto's certificate."""

from __future__ import annotations

import copy
import json
import logging
import urllib.request

import pytest
import sqlalchemy as sa

from mailer.config import with_overrides
from mailer.sending.message import MessageTemplate
from mailer.models import Status
from mailer.store.schema import sns_messages
from mailer.sending.transport.ses import SesTransport
from tests.fixtures.send import make_rendered
from tests.fixtures.ses import SENDER

# What moto 5 puts in every SES feedback notification, whoever the message was sent to.
MOTO_BOUNCED = ["recipient1@example.com", "recipient2@example.com"]
MOTO_COMPLAINED = ["recipient1@example.com"]


def moto_fetch(url: str) -> bytes:
    """GET from moto's server. It routes an unsigned request by the credential scope of an
    Authorization header, so name SNS there (moto does not check it)."""
    scope = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0"
    req = urllib.request.Request(url, headers={"Authorization": scope})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


@pytest.fixture
def moto_web(moto, start_web):
    """The app subscribed (HTTP) to an SNS topic that receives the domain's SES feedback."""
    sns = moto.client("sns")
    topic = sns.create_topic(Name="twir-mail-ses-feedback")["TopicArn"]
    live = start_web(topic_arns=[topic], test_cert_origin=moto.url, sns_fetcher=moto_fetch)
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"{live.url}/webhooks/ses")
    for kind in ("Bounce", "Complaint", "Delivery"):
        moto.client("ses").set_identity_notification_topic(
            Identity=SENDER.split("@")[1], NotificationType=kind, SnsTopic=topic)
    return live


@pytest.fixture
def fixed_moto_feedback(monkeypatch):
    """moto 5.2 publishes SES feedback as a dict (signed over its Python repr) with a placeholder
    notificationType; real SES publishes a JSON string. Correct that emulator bug in-process."""
    from moto.ses.models import SESBackend

    original = SESBackend.__generate_feedback__

    def as_json(self, msg_type):
        msg = copy.deepcopy(original(self, msg_type))
        msg["notificationType"] = msg_type
        return json.dumps(msg)

    monkeypatch.setattr(SESBackend, "__generate_feedback__", as_json)


def send_to(live, moto, recipient: str) -> str:
    settings = with_overrides(live.settings, ses={"endpoint_url": moto.url})
    template = MessageTemplate(make_rendered(), settings)
    transport = SesTransport(settings.ses, workers=1)
    try:
        return transport.send(template.build(recipient, "t0ken"), sender=SENDER, recipient=recipient, tags={})
    finally:
        transport.close()


@pytest.mark.slow
@pytest.mark.parametrize("simulator, status, affected", [
    ("bounce@simulator.amazonses.com", Status.BOUNCED, MOTO_BOUNCED),
    ("complaint@simulator.amazonses.com", Status.COMPLAINED, MOTO_COMPLAINED),
])
def test_simulator_feedback_reaches_the_subscribers(moto_web, moto, fixed_moto_feedback, simulator, status, affected):
    live = moto_web
    subs = {addr: live.add(addr)[0] for addr in MOTO_BOUNCED + ["bystander@example.com"]}
    send_to(live, moto, simulator)  # moto POSTs the notification before this returns
    for addr, sub in subs.items():
        expected = status if addr in affected else Status.SUBSCRIBED
        assert live.store.get_by_id(sub.id).status is expected, addr
    reason = "ses-bounce" if status is Status.BOUNCED else "ses-complaint"
    assert live.store.history(subs[affected[0]].id)[-1].reason == reason
    with live.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sns_messages)).scalar_one() == 1


@pytest.mark.slow
def test_unfixed_moto_notification_is_refused(moto_web, moto, caplog):
    """Without the correction moto's message is not a valid SNS message: 400, nothing changes."""
    live = moto_web
    sub, _ = live.add(MOTO_BOUNCED[0])
    with caplog.at_level(logging.WARNING, logger="twir_mail.webhook"):
        send_to(live, moto, "bounce@simulator.amazonses.com")
    assert any("webhook refused (400)" in r.getMessage() for r in caplog.records)
    assert live.store.get_by_id(sub.id).status is Status.SUBSCRIBED
