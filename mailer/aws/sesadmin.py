"""SES account plumbing: ``ses setup`` (idempotent) and ``ses status``.

Setup makes sure these exist and look as they should, changing only what differs:

1. the configuration set ``ses.configuration_set`` (SESv2 API);
2. the SNS topic ``ses.sns_topic``, with SignatureVersion 2 and a policy letting
   SES (this account, this configuration set only) publish to it;
3. an event destination on the set sending bounce, complaint, delivery, reject
   and delivery-delay events to the topic (SES v1 API: moto does not implement
   the v2 event-destination calls, and both APIs manage the same objects);
4. optionally an HTTPS subscription of ``{web.base_url}/webhooks/ses``, or (``--feedback sqs``)
   an SQS queue with a dead-letter queue, subscribed to the topic (mailer/aws/sqsadmin.py).

A dry run only reads, and reports what it would create or update.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import quote, urlsplit

from mailer.aws.client import AwsError, aws_errors, client, error_code, http_status
from mailer.config import Settings
from mailer.errors import ConfigError

DESTINATION_NAME = "twir-mail-feedback"
# SES v1 spelling of BOUNCE, COMPLAINT, DELIVERY, REJECT, DELIVERY_DELAY.
EVENT_TYPES = ("bounce", "complaint", "delivery", "reject", "deliveryDelay")
POLICY_SID = "TwirMailSesPublish"
WEBHOOK_PATH = "/webhooks/ses"
# As in deploy/aws/template.yaml: SNS paces itself and retries for about an hour, not dropping events.
DELIVERY_POLICY = {
    "healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 60, "numRetries": 60, "numNoDelayRetries": 0,
                           "numMinDelayRetries": 3, "numMaxDelayRetries": 40, "backoffFunction": "exponential"},
    "throttlePolicy": {"maxReceivesPerSecond": 50},
}


@dataclass
class Step:
    """One object setup looked at.

    ``state``: ok | unknown (the endpoint does not report it) | created | added | updated
    | would create | would add | would update.
    """

    subject: str
    state: str
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.state not in ("ok", "unknown")

    def __str__(self) -> str:
        return f"{self.subject}: {self.state}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class SetupReport:
    dry_run: bool
    topic_arn: str = ""
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)


# What SES accepts as a configuration set name and SNS as a topic name: checked before any
# call, so a bad name cannot leave the set created and the topic not.
NAME_RULES = {"ses.configuration_set": (re.compile(r"[A-Za-z0-9_-]{1,64}"), 64),
              "ses.sns_topic": (re.compile(r"[A-Za-z0-9_-]{1,256}"), 256)}


def _required_configuration_set(settings: Settings) -> str:
    name = settings.ses.configuration_set
    if not name:
        raise ConfigError("ses.configuration_set is empty: name the configuration set to use, e.g. "
                          "TWIR_MAIL_SES_CONFIGURATION_SET=twir-mail", setting="ses.configuration_set",
                          path=settings.config_path)
    for setting, value in (("ses.configuration_set", name), ("ses.sns_topic", settings.ses.sns_topic)):
        pattern, longest = NAME_RULES[setting]
        if not pattern.fullmatch(value):
            raise ConfigError(f"{setting} {value!r} is not a valid name: 1 to {longest} letters, digits, "
                              "'-' or '_'", setting=setting, path=settings.config_path)
    return name


def webhook_endpoint(settings: Settings, *, masked: bool = False) -> str:
    """``{web.base_url}/webhooks/ses``, with basic-auth credentials when configured."""
    base = settings.web.base_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme != "https":
        raise ConfigError(f"web.base_url must be https:// for an SNS subscription, got {base!r}",
                          setting="web.base_url", path=settings.config_path)
    user = settings.webhook.basic_auth_user
    if user:
        if not settings.webhook_password:
            raise ConfigError("webhook.basic_auth_user is set but TWIR_MAIL_WEBHOOK_PASSWORD is not",
                              setting="TWIR_MAIL_WEBHOOK_PASSWORD")
        password = "****" if masked else quote(settings.webhook_password, safe="")
        base = f"https://{quote(user, safe='')}:{password}@{parts.netloc}{parts.path}"
    return base + WEBHOOK_PATH


def setup(settings: Settings, *, dry_run: bool = False, subscribe_webhook: bool = False,
          feedback_queue: bool = False) -> SetupReport:
    """Create or fix the configuration set, topic, event destination (and webhook subscription,
    or SQS queue with its subscription)."""
    config_set = _required_configuration_set(settings)
    endpoint = webhook_endpoint(settings) if subscribe_webhook else ""
    report = SetupReport(dry_run=dry_run)
    sesv2, ses, sns = (client(settings, name) for name in ("sesv2", "ses", "sns"))
    verb = "would create" if dry_run else "created"

    with aws_errors(f"configuration set {config_set}"):
        exists = _configuration_set_exists(sesv2, config_set)
        if not exists and not dry_run:
            sesv2.create_configuration_set(ConfigurationSetName=config_set)
    report.steps.append(Step(f"configuration set {config_set}", "ok" if exists else verb))

    topic = settings.ses.sns_topic
    with aws_errors(f"SNS topic {topic}"):
        arn = _find_topic(sns, topic)
        if arn is None and not dry_run:
            arn = sns.create_topic(Name=topic, Attributes={"SignatureVersion": "2"})["TopicArn"]
            report.steps.append(Step(f"SNS topic {topic}", "created", arn))
        else:
            report.steps.append(Step(f"SNS topic {topic}", "ok" if arn else verb, arn or ""))
    report.topic_arn = arn or ""

    if arn:
        with aws_errors(f"SNS topic {topic} attributes"):
            report.steps += _topic_attributes(sns, arn, settings, config_set, dry_run)
    else:  # dry run, no topic yet: everything hanging off it is new too
        report.steps.append(Step(f"topic {topic} SignatureVersion=2 and SES publish policy", verb))

    with aws_errors(f"event destination {DESTINATION_NAME}"):
        report.steps.append(_event_destination(ses, config_set, arn, exists, dry_run))

    if endpoint:
        with aws_errors("webhook subscription"):
            report.steps.append(_subscription(sns, arn, endpoint, webhook_endpoint(settings, masked=True), dry_run))
    if feedback_queue:
        from mailer.aws.sqsadmin import setup_queue

        with aws_errors("SQS feedback queue"):
            steps, queue_url = setup_queue(client(settings, "sqs"), sns, arn, settings, dry_run, Step)
        report.steps += steps
        if queue_url and queue_url != settings.feedback.queue_url:
            report.notes.append(f"set feedback.queue_url (TWIR_MAIL_FEEDBACK_QUEUE_URL={queue_url}) so `send` and "
                                "`feedback poll` read it")
        return report
    if arn and arn not in settings.webhook.topic_arns:
        report.notes.append(f"add the topic to webhook.topic_arns (TWIR_MAIL_WEBHOOK_TOPIC_ARNS={arn}) "
                            "so the web app accepts its notifications")
    return report


def _configuration_set_exists(sesv2, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        sesv2.get_configuration_set(ConfigurationSetName=name)
        return True
    except ClientError as exc:
        if error_code(exc) == "NotFoundException":
            return False
        raise


def _find_topic(sns, name: str) -> str | None:
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                return topic["TopicArn"]
    return None


def publish_statement(topic_arn: str, region: str, config_set: str) -> dict:
    """The topic-policy statement letting SES publish events of this one configuration set."""
    partition, account = topic_arn.split(":")[1], topic_arn.split(":")[4]
    return {
        "Sid": POLICY_SID,
        "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "SNS:Publish",
        "Resource": topic_arn,
        "Condition": {"StringEquals": {
            "AWS:SourceAccount": account,
            "AWS:SourceArn": f"arn:{partition}:ses:{region}:{account}:configuration-set/{config_set}",
        }},
    }


def _topic_attributes(sns, arn: str, settings: Settings, config_set: str, dry_run: bool) -> list[Step]:
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    steps = []
    update = "would update" if dry_run else "updated"
    version = attrs.get("SignatureVersion")
    # Some endpoints (moto) do not report the attribute (None): writing "2" is harmless either way.
    if version != "2" and not dry_run:
        sns.set_topic_attributes(TopicArn=arn, AttributeName="SignatureVersion", AttributeValue="2")
    if version is None:
        steps.append(Step("topic SignatureVersion", "unknown" if dry_run else "ok",
                          "not reported by this endpoint" + ("" if dry_run else "; set to 2")))
    elif version != "2":
        steps.append(Step("topic SignatureVersion", update, f"{version} -> 2"))
    else:
        steps.append(Step("topic SignatureVersion", "ok", "2"))

    policy = json.loads(attrs.get("Policy") or '{"Version": "2012-10-17", "Statement": []}')
    wanted = publish_statement(arn, settings.ses.region, config_set)
    statements = [s for s in policy.get("Statement", []) if s.get("Sid") != POLICY_SID]
    current = [s for s in policy.get("Statement", []) if s.get("Sid") == POLICY_SID]
    if current == [wanted]:
        steps.append(Step("topic policy: SES may publish", "ok"))
        return steps
    policy["Statement"] = statements + [wanted]
    if not dry_run:
        sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    steps.append(Step("topic policy: SES may publish", update if current else ("would add" if dry_run else "added")))
    return steps


def _event_destination(ses, config_set: str, arn: str | None, set_exists: bool, dry_run: bool) -> Step:
    subject = f"event destination {DESTINATION_NAME} ({', '.join(EVENT_TYPES)})"
    wanted = {"Name": DESTINATION_NAME, "Enabled": True, "MatchingEventTypes": list(EVENT_TYPES),
              "SNSDestination": {"TopicARN": arn or ""}}
    current = _feedback_destination(ses, config_set) if set_exists else None
    if current is None:
        if not dry_run:
            ses.create_configuration_set_event_destination(ConfigurationSetName=config_set, EventDestination=wanted)
        return Step(subject, "would create" if dry_run else "created", f"to {arn or 'the new topic'}")
    drift = _destination_drift(current, wanted)
    if not drift:
        return Step(subject, "ok", f"to {arn}")
    if not dry_run:
        ses.update_configuration_set_event_destination(ConfigurationSetName=config_set, EventDestination=wanted)
    return Step(subject, "would update" if dry_run else "updated", "; ".join(drift))


def _feedback_destination(ses, config_set: str) -> dict | None:
    """The set's twir-mail event destination as SES v1 describes it, or None."""
    described = ses.describe_configuration_set(ConfigurationSetName=config_set,
                                               ConfigurationSetAttributeNames=["eventDestinations"])
    return next((d for d in described.get("EventDestinations") or []
                 if d and d.get("Name") == DESTINATION_NAME), None)


def _destination_drift(current: dict, wanted: dict) -> list[str]:
    drift = []
    if not current.get("Enabled", False):
        drift.append("was disabled")
    have, want = set(current.get("MatchingEventTypes", [])), set(wanted["MatchingEventTypes"])
    if have != want:
        drift.append(f"event types {', '.join(sorted(have)) or 'none'} -> {', '.join(sorted(want))}")
    old_topic = (current.get("SNSDestination") or {}).get("TopicARN", "")
    if wanted["SNSDestination"]["TopicARN"] and old_topic != wanted["SNSDestination"]["TopicARN"]:
        drift.append(f"topic {old_topic or 'none'} -> {wanted['SNSDestination']['TopicARN']}")
    return drift


def _subscription(sns, arn: str | None, endpoint: str, shown: str, dry_run: bool) -> Step:
    subject = f"HTTPS subscription {shown}"
    if arn:
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn):
            for sub in page.get("Subscriptions", []):
                if sub.get("Protocol") == "https" and sub.get("Endpoint") == endpoint:
                    pending = sub.get("SubscriptionArn") == "PendingConfirmation"
                    return Step(subject, "ok", "pending confirmation by the web app" if pending else "confirmed")
    if dry_run:
        return Step(subject, "would create")
    sns.subscribe(TopicArn=arn, Protocol="https", Endpoint=endpoint,
                  Attributes={"RawMessageDelivery": "false", "DeliveryPolicy": json.dumps(DELIVERY_POLICY)},
                  ReturnSubscriptionArn=True)
    return Step(subject, "created", "SNS now posts a SubscriptionConfirmation the web app confirms")


# -- status ---------------------------------------------------------------------

@dataclass
class AccountStatus:
    region: str
    max_24_hour_send: float
    max_send_rate: float
    sent_last_24_hours: float
    sending_enabled: bool | None = None      # None: the endpoint does not say (GetAccount unsupported)
    production_access: bool | None = None
    enforcement_status: str | None = None
    domain: str = ""
    domain_verification: str | None = None   # None: the domain is not an SES identity
    domain_verified_for_sending: bool | None = None
    dkim_status: str | None = None
    dkim_signing: bool | None = None
    configuration_set: str = ""
    configuration_set_exists: bool | None = None
    event_types: list[str] = field(default_factory=list)
    event_topic: str = ""

    @property
    def problems(self) -> list[str]:
        out = []
        refusal, warning = account_verdict({"SendingEnabled": self.sending_enabled,
                                            "EnforcementStatus": self.enforcement_status})
        if refusal or warning:  # the same verdict `send` acts on
            out.append(refusal or warning)
        if self.production_access is False:
            out.append("the account is in the SES sandbox: request production access")
        if self.domain_verification != "SUCCESS":
            out.append(f"the domain {self.domain} is not verified in SES")
        if self.dkim_status != "SUCCESS":
            out.append(f"DKIM for {self.domain} is not set up (status {self.dkim_status or 'none'})")
        if self.configuration_set and not self.configuration_set_exists:
            out.append(f"configuration set {self.configuration_set} does not exist: run `twir-mail ses setup`")
        elif self.configuration_set and set(self.event_types) != set(EVENT_TYPES):
            out.append(f"configuration set {self.configuration_set} lacks the feedback event destination: "
                       "run `twir-mail ses setup`")
        return out


def sender_domain(settings: Settings) -> str:
    return parseaddr(settings.newsletter.from_)[1].rpartition("@")[2].lower()


def status(settings: Settings) -> AccountStatus:
    """Quota, sending state, sandbox, sender-domain verification and DKIM, configuration set."""
    sesv2, ses = client(settings, "sesv2"), client(settings, "ses")
    with aws_errors("SES send quota"):
        quota = ses.get_send_quota()
    st = AccountStatus(settings.ses.region, quota["Max24HourSend"], quota["MaxSendRate"], quota["SentLast24Hours"])
    with aws_errors("SES account"):
        _account(sesv2, st)
    st.domain = sender_domain(settings)
    with aws_errors(f"SES identity {st.domain}"):
        _identity(sesv2, st)
    if settings.ses.configuration_set:
        st.configuration_set = settings.ses.configuration_set
        with aws_errors(f"configuration set {st.configuration_set}"):
            _config_set_status(sesv2, ses, st)
    return st


def _account(sesv2, st: AccountStatus) -> None:
    from botocore.exceptions import ClientError

    try:
        account = sesv2.get_account()
    except ClientError as exc:
        # Emulators without GetAccount answer 404 (AWS itself never does): leave unknown.
        if http_status(exc) == 404 and not error_code(exc).endswith("Exception"):
            return
        raise
    apply_account(st, account)


def account_verdict(account: dict) -> tuple[str | None, str | None]:
    """(refusal, warning) from an SESv2 GetAccount response: a paused account must not send;
    one under review (PROBATION) may, with care."""
    enforcement = str(account.get("EnforcementStatus") or "")
    if account.get("SendingEnabled") is False or enforcement == "SHUTDOWN":
        why = "enforcement status SHUTDOWN" if enforcement == "SHUTDOWN" else "SendingEnabled is false"
        return (f"the SES account cannot send ({why}): fix the cause and ask AWS to resume sending, "
                "see `twir-mail ses status`"), None
    if enforcement == "PROBATION":
        return None, ("the SES account is under review (enforcement status PROBATION): a bounce rate near 10% "
                      "or complaints near 0.5% will pause it; send only to a clean list")
    return None, None


def apply_account(st: AccountStatus, account: dict) -> None:
    """Fill ``st`` from an SESv2 GetAccount response."""
    st.sending_enabled = bool(account.get("SendingEnabled"))
    st.production_access = bool(account.get("ProductionAccessEnabled"))
    st.enforcement_status = account.get("EnforcementStatus")
    quota = account.get("SendQuota") or {}
    st.max_24_hour_send = quota.get("Max24HourSend", st.max_24_hour_send)
    st.max_send_rate = quota.get("MaxSendRate", st.max_send_rate)
    st.sent_last_24_hours = quota.get("SentLast24Hours", st.sent_last_24_hours)


def _identity(sesv2, st: AccountStatus) -> None:
    from botocore.exceptions import ClientError

    try:
        ident = sesv2.get_email_identity(EmailIdentity=st.domain)
    except ClientError as exc:
        if error_code(exc) == "NotFoundException":
            return
        raise
    st.domain_verification = ident.get("VerificationStatus") or (
        "SUCCESS" if ident.get("VerifiedForSendingStatus") else "PENDING")
    st.domain_verified_for_sending = ident.get("VerifiedForSendingStatus")
    dkim = ident.get("DkimAttributes") or {}
    st.dkim_status, st.dkim_signing = dkim.get("Status"), dkim.get("SigningEnabled")


def _config_set_status(sesv2, ses, st: AccountStatus) -> None:
    st.configuration_set_exists = _configuration_set_exists(sesv2, st.configuration_set)
    if not st.configuration_set_exists:
        return
    dest = _feedback_destination(ses, st.configuration_set)
    if dest and dest.get("Enabled"):
        st.event_types = list(dest.get("MatchingEventTypes", []))
        st.event_topic = (dest.get("SNSDestination") or {}).get("TopicARN", "")


__all__ = ["AwsError", "SetupReport", "Step", "AccountStatus", "setup", "status", "webhook_endpoint", "account_verdict",
           "publish_statement", "EVENT_TYPES", "DESTINATION_NAME"]
