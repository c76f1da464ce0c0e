"""`ses setup` / `ses status` against moto's server mode (real boto3 calls over loopback)."""

from __future__ import annotations

import json

import pytest

from mailer.aws import sesadmin
from mailer.aws.client import AwsError
from mailer.config import load_settings
from mailer.errors import ConfigError
from tests.fixtures.core import free_port

CONFIG_SET = "twir-mail"
TOPIC = "twir-mail-ses-feedback"


@pytest.fixture
def aws_settings(moto, workdir):
    return load_settings(env={
        "TWIR_MAIL_SES_ENDPOINT_URL": moto.url,
        "TWIR_MAIL_SES_CONFIGURATION_SET": CONFIG_SET,
        "TWIR_MAIL_WEB_BASE_URL": "https://mail.example.org/",
    })


def snapshot(moto) -> dict:
    """Everything setup may touch, as the AWS APIs report it."""
    sns, ses, sesv2 = moto.client("sns"), moto.client("ses"), moto.client("sesv2")
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    out = {"sets": sorted(c["Name"] for c in ses.list_configuration_sets()["ConfigurationSets"]),
           "topics": sorted(topics), "attrs": {}, "subs": {}, "dests": {}}
    for arn in topics:
        attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        out["attrs"][arn] = {k: attrs.get(k) for k in ("Policy", "SignatureVersion", "DisplayName")}
        out["subs"][arn] = sorted((s["Protocol"], s["Endpoint"], s["SubscriptionArn"])
                                  for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"])
    for name in out["sets"]:
        sesv2.get_configuration_set(ConfigurationSetName=name)
        d = ses.describe_configuration_set(ConfigurationSetName=name, ConfigurationSetAttributeNames=["eventDestinations"])
        out["dests"][name] = [x for x in d.get("EventDestinations") or [] if x]
    return out


def test_setup_creates_everything(moto, aws_settings):
    report = sesadmin.setup(aws_settings, subscribe_webhook=True)
    assert report.changed
    arn = report.topic_arn
    assert arn.endswith(f":{TOPIC}")

    state = snapshot(moto)
    assert state["sets"] == [CONFIG_SET]
    [dest] = state["dests"][CONFIG_SET]
    assert dest["Enabled"] is True
    assert sorted(dest["MatchingEventTypes"]) == sorted(["bounce", "complaint", "delivery", "reject", "deliveryDelay"])
    assert dest["SNSDestination"]["TopicARN"] == arn

    policy = json.loads(state["attrs"][arn]["Policy"])
    [ours] = [s for s in policy["Statement"] if s.get("Sid") == sesadmin.POLICY_SID]
    assert ours["Principal"] == {"Service": "ses.amazonaws.com"}
    assert ours["Condition"]["StringEquals"]["AWS:SourceArn"] == \
        f"arn:aws:ses:us-east-1:123456789012:configuration-set/{CONFIG_SET}"
    # The default statements of the topic are kept.
    assert len(policy["Statement"]) >= 2

    [(protocol, endpoint, sub_arn)] = state["subs"][arn]
    assert (protocol, endpoint) == ("https", "https://mail.example.org/webhooks/ses")
    sub = moto.client("sns").get_subscription_attributes(SubscriptionArn=sub_arn)["Attributes"]
    assert sub.get("RawMessageDelivery", "false") == "false"
    assert json.loads(sub["DeliveryPolicy"]) == sesadmin.DELIVERY_POLICY
    assert any("webhook.topic_arns" in n for n in report.notes)


def test_second_setup_changes_nothing(moto, aws_settings):
    sesadmin.setup(aws_settings, subscribe_webhook=True)
    before = snapshot(moto)
    again = sesadmin.setup(aws_settings, subscribe_webhook=True)
    assert not again.changed, [str(s) for s in again.steps]
    assert {s.state for s in again.steps} <= {"ok", "unknown"}
    assert snapshot(moto) == before
    # A dry run after setup also finds nothing to do.
    assert not sesadmin.setup(aws_settings, dry_run=True, subscribe_webhook=True).changed


def test_dry_run_changes_nothing_and_reports(moto, aws_settings):
    before = snapshot(moto)
    report = sesadmin.setup(aws_settings, dry_run=True, subscribe_webhook=True)
    assert snapshot(moto) == before
    states = {s.subject.split(" (")[0]: s.state for s in report.steps}
    assert states[f"configuration set {CONFIG_SET}"] == "would create"
    assert states[f"SNS topic {TOPIC}"] == "would create"
    assert states[f"event destination {sesadmin.DESTINATION_NAME}"] == "would create"
    assert report.changed


def test_dry_run_reports_drifted_event_destination(moto, aws_settings):
    old_topic = moto.client("sns").create_topic(Name="old-topic")["TopicArn"]
    moto.client("sesv2").create_configuration_set(ConfigurationSetName=CONFIG_SET)
    moto.client("ses").create_configuration_set_event_destination(
        ConfigurationSetName=CONFIG_SET,
        EventDestination={"Name": sesadmin.DESTINATION_NAME, "Enabled": False, "MatchingEventTypes": ["bounce"],
                          "SNSDestination": {"TopicARN": old_topic}})
    sesadmin.setup(aws_settings, dry_run=True)  # no topic yet: nothing to compare the ARN with
    moto.client("sns").create_topic(Name=TOPIC)
    plan = sesadmin.setup(aws_settings, dry_run=True)
    [dest] = [s for s in plan.steps if s.subject.startswith("event destination")]
    assert dest.state == "would update"
    assert "was disabled" in dest.detail and "deliveryDelay" in dest.detail
    assert f"old-topic -> arn:aws:sns:us-east-1:123456789012:{TOPIC}" in dest.detail
    [config_set] = [s for s in plan.steps if s.subject.startswith("configuration set")]
    assert config_set.state == "ok"


def test_missing_configuration_set_is_a_config_error(moto, workdir):
    settings = load_settings(env={"TWIR_MAIL_SES_ENDPOINT_URL": moto.url})
    with pytest.raises(ConfigError, match="ses.configuration_set"):
        sesadmin.setup(settings)


def test_webhook_endpoint_needs_https_and_masks_password(workdir):
    plain = load_settings(env={"TWIR_MAIL_WEB_BASE_URL": "http://mail.example.org"})
    with pytest.raises(ConfigError, match="https"):
        sesadmin.webhook_endpoint(plain)
    auth = load_settings(env={"TWIR_MAIL_WEB_BASE_URL": "https://mail.example.org/app",
                              "TWIR_MAIL_WEBHOOK_BASIC_AUTH_USER": "sns",
                              "TWIR_MAIL_WEBHOOK_PASSWORD": "p@ss/word"})
    assert sesadmin.webhook_endpoint(auth) == "https://sns:p%40ss%2Fword@mail.example.org/app/webhooks/ses"
    assert sesadmin.webhook_endpoint(auth, masked=True) == "https://sns:****@mail.example.org/app/webhooks/ses"


def test_status_reports_quota_domain_and_set(moto, aws_settings):
    st = sesadmin.status(aws_settings)
    assert st.max_24_hour_send > 0 and st.max_send_rate > 0
    assert st.domain == "this-week-in-rust.org"
    assert st.domain_verification == "SUCCESS"       # the fixture verified the domain
    assert st.dkim_status != "SUCCESS"               # ... but without DKIM
    assert any("DKIM" in p for p in st.problems)
    assert st.configuration_set_exists is False

    sesv2 = moto.client("sesv2")
    sesv2.delete_email_identity(EmailIdentity="this-week-in-rust.org")
    sesv2.create_email_identity(EmailIdentity="this-week-in-rust.org", DkimSigningAttributes={
        "DomainSigningSelector": "twir", "DomainSigningPrivateKey": "a2V5"})
    sesadmin.setup(aws_settings)
    st = sesadmin.status(aws_settings)
    assert (st.dkim_status, st.dkim_signing) == ("SUCCESS", True)
    assert st.configuration_set_exists and set(st.event_types) == set(sesadmin.EVENT_TYPES)
    assert not [p for p in st.problems if "DKIM" in p or "configuration set" in p]


def test_status_unknown_domain(moto, workdir):
    settings = load_settings(env={"TWIR_MAIL_SES_ENDPOINT_URL": moto.url,
                                  "TWIR_MAIL_NEWSLETTER_FROM": "X <news@unverified.example>"})
    st = sesadmin.status(settings)
    assert st.domain == "unverified.example" and st.domain_verification is None
    assert any("not verified" in p for p in st.problems)


def test_account_fields_from_a_getaccount_response():
    # Shape of a real SESv2 GetAccount answer (moto does not implement the call).
    st = sesadmin.AccountStatus("eu-west-1", 200, 1, 0, domain="x.org", domain_verification="SUCCESS",
                                dkim_status="SUCCESS")
    sesadmin.apply_account(st, {"SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 3.0},
                                "SendingEnabled": True, "EnforcementStatus": "HEALTHY",
                                "ProductionAccessEnabled": False, "DedicatedIpAutoWarmupEnabled": False})
    assert (st.max_24_hour_send, st.max_send_rate, st.sent_last_24_hours) == (50000.0, 14.0, 3.0)
    assert st.problems == ["the account is in the SES sandbox: request production access"]
    sesadmin.apply_account(st, {"SendingEnabled": False, "ProductionAccessEnabled": True})
    assert st.problems == ["the SES account cannot send (SendingEnabled is false): fix the cause and ask AWS to "
                           "resume sending, see `twir-mail ses status`"]
    sesadmin.apply_account(st, {"SendingEnabled": True, "ProductionAccessEnabled": True,
                                "EnforcementStatus": "PROBATION"})
    assert len(st.problems) == 1 and "under review (enforcement status PROBATION)" in st.problems[0]



def test_unreachable_endpoint_is_an_aws_error(workdir, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = load_settings(env={"TWIR_MAIL_SES_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                                  "TWIR_MAIL_SES_CONFIGURATION_SET": CONFIG_SET})
    with pytest.raises(AwsError, match="cannot reach the AWS endpoint http://127.0.0.1:"):
        sesadmin.setup(settings)


def test_setup_feedback_queue_is_idempotent_and_carries_events(moto, aws_settings, store, db_settings):
    from mailer.config import with_overrides
    from mailer.feedback.queue import FeedbackQueue
    from mailer.models import Status
    from tests.fixtures.sqs import ses_event

    dry = sesadmin.setup(aws_settings, dry_run=True, feedback_queue=True)
    assert [s.state for s in dry.steps if "SQS" in s.subject] == ["would create"] * 3
    assert moto.client("sqs").list_queues().get("QueueUrls", []) == []
    first = sesadmin.setup(aws_settings, feedback_queue=True)
    sqs_steps = {s.subject: s.state for s in first.steps if "SQS" in s.subject}
    assert list(sqs_steps.values()) == ["created", "created", "updated", "created"], sqs_steps
    [note] = [n for n in first.notes if "TWIR_MAIL_FEEDBACK_QUEUE_URL=" in n]
    url = note.split("TWIR_MAIL_FEEDBACK_QUEUE_URL=")[1].split(")")[0]
    sqs = moto.client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":twir-mail-ses-feedback-queue-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    [statement] = json.loads(attrs["Policy"])["Statement"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == first.topic_arn
    settings = with_overrides(aws_settings, feedback={"queue_url": url})
    again = sesadmin.setup(settings, feedback_queue=True)
    assert not again.changed and not [n for n in again.notes if "QUEUE_URL" in n]
    # What SES publishes to the topic now reaches the queue, and the poller applies it.
    sub = store.add("bounce-me@example.com")
    moto.client("sns").publish(TopicArn=first.topic_arn,
                               Message=json.dumps(ses_event("Bounce", sub.email, "m-1", shape="notificationType")))
    result = FeedbackQueue(store, with_overrides(db_settings, ses={"endpoint_url": moto.url},
                                                 feedback={"queue_url": url})).drain()
    assert result.applied == 1 and store.get(sub.email).status is Status.BOUNCED


def test_unreachable_endpoint_error_masks_credentials_in_its_url(workdir, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = load_settings(env={"TWIR_MAIL_SES_ENDPOINT_URL": f"http://proxy:s3cret-pw@127.0.0.1:{free_port()}",
                                  "TWIR_MAIL_SES_CONFIGURATION_SET": CONFIG_SET})
    with pytest.raises(AwsError) as info:
        sesadmin.setup(settings)
    assert "cannot reach the AWS endpoint http://proxy:***@127.0.0.1:" in str(info.value)
    assert "s3cret-pw" not in str(info.value)
