"""SNS signature verification and SES event parsing (no network: injected fetcher)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mailer.config import with_overrides
from mailer.errors import WebhookError
from mailer.aws.sns import SnsVerifier, parse_sns_body
from mailer.feedback.events import parse_ses_events
from tests.fixtures.sns import CERT_URL, TOPIC, SnsSigner

DATA = Path(__file__).parent / "data" / "ses"


@pytest.fixture
def verifier(settings, sns_signer):
    s = with_overrides(settings, webhook={"topic_arns": [TOPIC]})
    return SnsVerifier(s, fetcher=sns_signer.fetch)


def body(doc: dict) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [None, "Amazon SES Email Event Notification"])
def test_genuine_notifications_verify(verifier, sns_signer, version, subject):
    doc = sns_signer.notification({"hello": "world ünï"}, version=version, subject=subject)
    assert verifier.verify(parse_sns_body(body(doc))) == doc


def test_subscription_confirmation_verifies(verifier, sns_signer):
    doc = sns_signer.confirmation("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x")
    verifier.verify(parse_sns_body(body(doc)))
    assert verifier.check_subscribe_url(doc["SubscribeURL"])
    with pytest.raises(WebhookError):
        verifier.check_subscribe_url("https://evil.example.com/?Action=ConfirmSubscription")


def test_certificate_is_fetched_once(verifier, sns_signer):
    for _ in range(3):
        verifier.verify(sns_signer.notification("x"))
    assert sns_signer.fetched == [CERT_URL]


@pytest.mark.parametrize("field, value", [
    ("Message", "tampered"), ("MessageId", "other"), ("Timestamp", "2020-01-01T00:00:00.000Z"),
    ("Type", "SubscriptionConfirmation"), ("Subject", "added"),
])
def test_any_signed_field_changed_fails(verifier, sns_signer, field, value):
    doc = dict(sns_signer.notification("original"), **{field: value})
    with pytest.raises(WebhookError) as info:
        verifier.verify(doc)
    assert info.value.status in (400, 403)


def test_signature_by_another_key_fails(verifier, sns_signer):
    other = SnsSigner(rsa.generate_private_key(public_exponent=65537, key_size=2048), b"")
    forged = other.notification("x")
    with pytest.raises(WebhookError, match="bad signature"):
        verifier.verify(forged)


@pytest.mark.parametrize("url", [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-x.pem",
    "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://s3.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "file:///etc/passwd",
    # S3 virtual-hosted buckets named "sns": anyone's content under amazonaws.com
    "https://sns.s3-external-1.amazonaws.com/x.pem",
    "https://sns.s3-accelerate.amazonaws.com/x.pem",
    "https://sns.s3-us-west-2.amazonaws.com/x.pem",
    "https://sns.s3.amazonaws.com/x.pem",
    # user info, unparsable ports, a fullwidth '@' (urlsplit raises ValueError on these)
    "https://evil.com@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:abc/x.pem",
    "https://sns.us-east-1.amazonaws.com:99999/x.pem",
    "https://sns.us-east-1.amazonaws.com\uff20evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com./x.pem",
])
def test_certificate_from_elsewhere_is_refused_without_fetching(verifier, sns_signer, url):
    doc = sns_signer.notification("x", cert_url=url)
    with pytest.raises(WebhookError) as info:
        verifier.verify(doc)
    assert info.value.status == 403
    assert sns_signer.fetched == []


@pytest.mark.parametrize("host", ["sns.cn-north-1.amazonaws.com.cn", "sns.us-gov-west-1.amazonaws.com",
                                  "sns.ap-southeast-4.amazonaws.com", "SNS.EU-WEST-1.AMAZONAWS.COM:443"])
def test_china_govcloud_and_other_regions_are_accepted(verifier, sns_signer, host):
    doc = sns_signer.notification("x", cert_url=f"https://{host}/SimpleNotificationService-x.pem")
    verifier.verify(doc)


@pytest.mark.parametrize("url", [
    "https://sns.s3-external-1.amazonaws.com/?Action=ConfirmSubscription",
    "https://x@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    "https://sns.us-east-1.amazonaws.com:8443/?Action=ConfirmSubscription",
    "https://sns.us-east-1.amazonaws.com:bad/?Action=ConfirmSubscription",
])
def test_subscribe_url_needs_the_same_sns_host(verifier, url):
    with pytest.raises(WebhookError) as info:
        verifier.check_subscribe_url(url)
    assert info.value.status == 403


def test_unknown_topic_is_refused_before_fetching(verifier, sns_signer):
    doc = sns_signer.notification("x", topic="arn:aws:sns:us-east-1:999999999999:other")
    with pytest.raises(WebhookError, match="topic"):
        verifier.verify(doc)
    assert sns_signer.fetched == []


def test_unsupported_version_and_bad_base64(verifier, sns_signer):
    doc = sns_signer.notification("x")
    with pytest.raises(WebhookError):
        verifier.verify(dict(doc, SignatureVersion="3"))
    with pytest.raises(WebhookError):
        verifier.verify(dict(doc, Signature="not base64!"))


def test_unreachable_certificate_is_a_403(settings, sns_signer):
    def broken(url):
        raise OSError("connection refused")
    v = SnsVerifier(with_overrides(settings, webhook={"topic_arns": [TOPIC]}), fetcher=broken)
    with pytest.raises(WebhookError) as info:
        v.verify(sns_signer.notification("x"))
    assert info.value.status == 403


def test_test_origin_redirects_fetch_only_when_set(settings, sns_signer):
    s = with_overrides(settings, webhook={"topic_arns": [TOPIC], "test_cert_origin": "http://127.0.0.1:5999"})
    SnsVerifier(s, fetcher=sns_signer.fetch).verify(sns_signer.notification("x"))
    assert sns_signer.fetched == ["http://127.0.0.1:5999/SimpleNotificationService-test.pem"]


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b'{"Type": "Other"}', b"\xff\xfe",
    b'{"Type": "Notification", "MessageId": 5}', b'{"Type": "Notification"}',
    b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json
])
def test_malformed_bodies_are_400(raw):
    with pytest.raises(WebhookError) as info:
        parse_sns_body(raw)
    assert info.value.status == 400


def load(name: str) -> str:
    return (DATA / name).read_text()


def test_identity_bounce_with_several_recipients_and_unknown_fields():
    events = parse_ses_events(load("bounce-identity.json"))
    assert [(e.kind, e.address, e.bounce_type, e.permanent_bounce) for e in events] == [
        ("bounce", "gone@example.com", "Permanent", True),
        ("bounce", "Also.Gone@Example.com", "Permanent", True),
    ]
    assert events[0].message_id == "0100017e-ses-message-1"
    assert "550 5.1.1" in events[0].detail


def test_event_shapes():
    (transient,) = parse_ses_events(load("bounce-event-transient.json"))
    assert (transient.kind, transient.bounce_type, transient.permanent_bounce) == ("bounce", "Transient", False)
    (complaint,) = parse_ses_events(load("complaint-event.json"))
    assert (complaint.kind, complaint.address, complaint.detail) == ("complaint", "angry@example.com", "abuse")
    (delivery,) = parse_ses_events(load("delivery-identity.json"))
    assert (delivery.kind, delivery.message_id) == ("delivery", "0100017e-ses-message-4")
    (delay,) = parse_ses_events(load("delay-event.json"))
    assert (delay.kind, delay.detail) == ("delivery_delay", "TransientCommunicationFailure")
    (reject,) = parse_ses_events(load("reject-event.json"))
    assert (reject.kind, reject.address, reject.detail) == ("reject", "virus@example.com", "Bad content")


@pytest.mark.parametrize("message", ["", "null", "[1]", '{"eventType": "Bounce"}', '{"notificationType": "AmazonSnsSubscriptionSucceeded"}',
                                     '{"eventType": "Bounce", "bounce": {"bouncedRecipients": [1, {"emailAddress": 5}]}}'])
def test_odd_messages_give_no_events(message):
    assert parse_ses_events(message) == []
