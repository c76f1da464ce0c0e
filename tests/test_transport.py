"""Transports against real servers: moto (SES over HTTP) and aiosmtpd (SMTP)."""

from __future__ import annotations

import base64
import email
import json
from email import policy

import pytest

from mailer.config import with_overrides
from mailer.errors import ConfigError, PermanentTransportError, RetryableTransportError, SendingPaused
from mailer.sending.message import MessageTemplate
from mailer.sending.transport import NullTransport, OutboxTransport, check_sendable, open_transport, sendable_warnings
from mailer.sending.transport.ses import SesTransport
from mailer.sending.transport.smtp import SmtpTransport
from tests.fixtures.send import FaultInjector, make_rendered
from tests.fixtures.smtp import PASSWORD, USER

SENDER = "newsletter@this-week-in-rust.org"
TAGS = {"campaign": "7", "issue": "600"}


def raw_for(settings, recipient="reader@example.com", token="tok." + "x" * 80) -> bytes:
    return MessageTemplate(make_rendered(), settings).build(recipient, token)


def ses_settings(settings, moto, **ses):
    return with_overrides(settings, transport={"kind": "ses"},
                          ses={"endpoint_url": moto.url, "region": "us-east-1", **ses})


def test_outbox_writes_complete_files_atomically(settings, tmp_path):
    box = OutboxTransport(tmp_path / "out")
    raw = raw_for(settings)
    ids = {box.send(raw, sender=SENDER, recipient=f"r{i}@example.com", tags=TAGS) for i in range(5)}
    files = sorted((tmp_path / "out").iterdir())
    assert len(ids) == 5 and len(files) == 5
    assert all(f.suffix == ".eml" and f.read_bytes() == raw for f in files)
    assert all(f.name.startswith("600-7-") and "example.com" not in f.name for f in files)  # no recipient


def test_outbox_unwritable_pauses(settings, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SendingPaused, match="cannot create outbox folder"):
        OutboxTransport(tmp_path / "file" / "sub").send(b"x", sender=SENDER, recipient="a@example.com", tags={})


def test_open_transport_kinds(settings):
    assert open_transport(settings).name == "outbox"
    assert isinstance(open_transport(settings, dry_run=True), NullTransport)


def test_real_delivery_needs_secret_and_public_url(settings):
    ses = with_overrides(settings, transport={"kind": "ses"})
    with pytest.raises(ConfigError, match="TWIR_MAIL_SECRET_KEY"):
        check_sendable(ses)
    from dataclasses import replace
    secret = replace(with_overrides(ses, newsletter={"postal_address": "1 Main St, Springfield"}), secret_key="s" * 32)
    with pytest.raises(ConfigError, match="base_url"):
        check_sendable(secret)
    check_sendable(with_overrides(secret, web={"base_url": "https://mail.example.org"}))
    assert sendable_warnings(with_overrides(secret, web={"base_url": "https://mail.example.org"})) == []
    # Explicitly chosen local or plain-http URLs (staging, a local end-to-end test) are sent
    # with a warning rather than refused.
    for local in ("http://localhost:8000", "https://[::1]/", "https://0.0.0.0", "http://127.0.0.2:8000",
                  "https://twir.localhost"):
        s = with_overrides(secret, web={"base_url": local})
        check_sendable(s)
        assert ["local address" in w for w in sendable_warnings(s)] == [True]
    s = with_overrides(secret, web={"base_url": "http://mail.example.org"})
    assert ["not https" in w for w in sendable_warnings(s)] == [True]
    check_sendable(settings)  # outbox: always fine
    # CAN-SPAM: a sponsored newsletter is commercial email and needs a postal address.
    no_address = with_overrides(secret, web={"base_url": "https://mail.example.org"}, newsletter={"postal_address": " "})
    assert ["postal_address is empty" in w for w in sendable_warnings(no_address)] == [True]
    assert sendable_warnings(with_overrides(no_address, transport={"kind": "outbox"})) == []


def test_ses_send_raw_with_tags_and_configuration_set(settings, moto):
    moto.client("sesv2").create_configuration_set(ConfigurationSetName="twir")
    s = ses_settings(settings, moto, configuration_set="twir")
    t = open_transport(s)
    spy = FaultInjector(count=0).install(t.client)
    raw = raw_for(s)
    msg_id = t.send(raw, sender=SENDER, recipient="reader@example.com", tags=TAGS)
    sent = moto.sent_messages()
    assert len(sent) == 1 and sent[0]["id"] == msg_id
    assert sent[0]["raw_data"].encode() == raw
    body = json.loads(spy.requests[0])
    assert body["ConfigurationSetName"] == "twir"
    assert sorted((t["Name"], t["Value"]) for t in body["EmailTags"]) == [("campaign", "7"), ("issue", "600")]
    assert base64.b64decode(body["Content"]["Raw"]["Data"]) == raw
    assert body["Destination"] == {"ToAddresses": ["reader@example.com"]}


def test_ses_throttling_surfaces_at_once_for_paced_retries(settings, moto):
    # No hidden botocore retries: each attempt must go through the campaign's pacer.
    t = open_transport(ses_settings(settings, moto))
    inj = FaultInjector(count=1).install(t.client)
    with pytest.raises(RetryableTransportError) as exc:
        t.send(raw_for(settings), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert exc.value.code == "TooManyRequestsException" and len(inj.requests) == 1
    assert t.send(raw_for(settings), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert len(inj.requests) == 2 and len(moto.sent_messages()) == 1


@pytest.mark.parametrize("status,code,kind", [
    (400, "MessageRejected", PermanentTransportError),
    (400, "SendingPausedException", SendingPaused),
    (400, "AccountSuspendedException", SendingPaused),
    (400, "LimitExceededException", SendingPaused),
    (400, "BadRequestException", PermanentTransportError),
    (429, "SomethingNew", RetryableTransportError),
    (500, "InternalFailure", RetryableTransportError),
    (503, "ServiceUnavailable", RetryableTransportError),
])
def test_ses_error_classification(settings, moto, status, code, kind):
    t = SesTransport(ses_settings(settings, moto).ses, max_attempts=1)
    FaultInjector(status=status, code=code, count=1).install(t.client)
    with pytest.raises(kind) as exc:
        t.send(raw_for(settings), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert type(exc.value) is kind


def test_ses_signature_refusal_pauses_without_quoting_the_session_token(settings, moto):
    """SES quotes the canonical request it expected in SignatureDoesNotMatch, session token and
    all; the pause message is printed and kept with the campaign."""
    from tests.fixtures.send import aws_error

    token = "IQoJb3JpZ2luX2VjEFROMAPROFILE"
    message = ("The request signature we calculated does not match the signature you provided.\n\n"
               f"The Canonical String for this request should have been\n'POST\nx-amz-security-token:{token}\n'")
    t = SesTransport(ses_settings(settings, moto).ses, max_attempts=1)
    t.client.meta.events.register("before-send.sesv2.SendEmail",
                                  lambda request, **kw: aws_error(403, "SignatureDoesNotMatch", message))
    with pytest.raises(SendingPaused) as exc:
        t.send(raw_for(settings), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert str(exc.value) == ("SES SignatureDoesNotMatch: The request signature we calculated does not match the "
                              "signature you provided. (check the AWS credentials and region)")


def test_ses_unverified_sender_is_rejected(settings, moto):
    t = open_transport(ses_settings(settings, moto))
    with pytest.raises(PermanentTransportError, match="MessageRejected"):
        t.send(raw_for(settings), sender="nobody@unverified.example", recipient="a@example.com", tags=TAGS)


def test_ses_connection_refused_is_retryable(settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s = with_overrides(settings, transport={"kind": "ses"}, ses={"endpoint_url": "http://127.0.0.1:9"})
    t = SesTransport(s.ses, max_attempts=1)
    with pytest.raises(RetryableTransportError, match="connection"):
        t.send(b"x", sender=SENDER, recipient="a@example.com", tags=TAGS)


def test_ses_bad_credentials_pause_and_fail_the_check(settings, moto):
    t = open_transport(ses_settings(settings, moto))
    with moto.checking_credentials():
        with pytest.raises(SendingPaused, match="InvalidClientTokenId.*check the AWS credentials"):
            t.check()
        # sesv2 answers a 403 moto-style (no JSON error code): still not one recipient's fault
        with pytest.raises(SendingPaused, match="403"):
            t.send(raw_for(settings), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert moto.sent_messages() == []


def test_ses_unknown_aws_profile_is_a_config_error(settings, moto, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ConfigError, match="no-such-profile"):
        open_transport(ses_settings(settings, moto))


def test_ses_account_rate_from_get_account(settings, moto):
    t = open_transport(ses_settings(settings, moto))

    def answer(request, **kw):  # moto lacks sesv2 GetAccount: answer it as SES does
        from tests.fixtures.send import _Raw
        from botocore.awsrequest import AWSResponse
        body = json.dumps({"SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 37.0, "SentLast24Hours": 0.0},
                           "SendingEnabled": True, "ProductionAccessEnabled": True}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw(body))

    t.client.meta.events.register("before-send.sesv2.GetAccount", answer)
    assert t.account_rate() == 37.0


def test_ses_account_rate_falls_back_to_v1_quota(settings, moto):
    # moto has no sesv2 GetAccount: the v1 GetSendQuota answer (MaxSendRate 1) is used.
    assert open_transport(ses_settings(settings, moto)).account_rate() == 1.0


def _smtp_settings(settings, server):
    s = with_overrides(settings, transport={"kind": "smtp"},
                       smtp={"host": "127.0.0.1", "port": server.port, "security": server.security,
                             "username": USER if server.security != "none" else ""})
    from dataclasses import replace
    return replace(s, smtp_password=PASSWORD)


def test_smtp_tls_login_and_delivery(settings, smtp_tls_server):
    s = _smtp_settings(settings, smtp_tls_server)
    t = open_transport(s)
    raw = raw_for(s)
    for i in range(3):
        assert t.send(raw, sender=SENDER, recipient=f"r{i}@example.com", tags=TAGS)
    t.close()
    got = smtp_tls_server.messages
    assert [m.recipients for m in got] == [[f"r{i}@example.com"] for i in range(3)]
    msg = email.message_from_bytes(got[0].data, policy=policy.default)
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/tok.")
    assert got[0].data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


def test_smtp_bad_password_pauses(settings, smtp_tls_server):
    from dataclasses import replace
    s = replace(_smtp_settings(settings, smtp_tls_server), smtp_password="wrong")
    with pytest.raises(SendingPaused, match="login refused"):
        open_transport(s).send(raw_for(s), sender=SENDER, recipient="a@example.com", tags=TAGS)


def test_smtp_check_logs_in_once(settings, smtp_tls_server):
    from dataclasses import replace
    s = _smtp_settings(settings, smtp_tls_server)
    open_transport(s).check()
    with pytest.raises(SendingPaused, match="login refused"):
        open_transport(replace(s, smtp_password="wrong")).check()
    down = with_overrides(s, smtp={"port": 9})
    with pytest.raises(RetryableTransportError, match="connection"):
        open_transport(down).check()
    assert smtp_tls_server.messages == []


def test_smtp_454_is_retryable_then_succeeds(settings, smtp_server):
    s = _smtp_settings(settings, smtp_server)
    t = SmtpTransport(s.smtp, "")
    smtp_server.handler.fail_next = 1
    with pytest.raises(RetryableTransportError) as exc:
        t.send(raw_for(s), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert exc.value.code == "454"
    assert t.send(raw_for(s), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert len(smtp_server.messages) == 1


def test_smtp_5xx_permanent_and_quota_pauses(settings, smtp_server):
    s = _smtp_settings(settings, smtp_server)
    t = SmtpTransport(s.smtp, "")
    smtp_server.handler.fail_next, smtp_server.handler.fail_reply = 1, "554 Message rejected: bad address"
    with pytest.raises(PermanentTransportError):
        t.send(raw_for(s), sender=SENDER, recipient="a@example.com", tags=TAGS)
    smtp_server.handler.fail_next = 1
    smtp_server.handler.fail_reply = "454 Throttling failure: Daily message quota exceeded."
    with pytest.raises(SendingPaused):
        t.send(raw_for(s), sender=SENDER, recipient="a@example.com", tags=TAGS)
    assert t.send(raw_for(s), sender=SENDER, recipient="a@example.com", tags=TAGS)


def test_smtp_connection_refused_is_retryable(settings):
    s = with_overrides(settings, smtp={"host": "127.0.0.1", "port": 9, "security": "none"})
    with pytest.raises(RetryableTransportError):
        SmtpTransport(s.smtp, "").send(b"x", sender=SENDER, recipient="a@example.com", tags=TAGS)
