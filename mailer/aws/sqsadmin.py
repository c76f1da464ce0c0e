"""`ses setup --feedback sqs`: the feedback queue, its dead-letter queue, policy and subscription.

Idempotent like the rest of setup: each object is read first and only what
differs is created or changed. The queue is subscribed to the feedback topic
with the SNS envelope kept (RawMessageDelivery off), so each event carries the
SNS MessageId the webhook also uses for replay protection. A message that
cannot be applied five times goes to the dead-letter queue (kept 14 days).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from mailer.config import Settings

MAX_RECEIVES = 5
RETENTION = 14 * 24 * 3600  # SQS's longest
POLICY_SID = "TwirMailSnsSend"


def queue_name(settings: Settings) -> str:
    """``feedback.queue_url``'s name if set, else ``{ses.sns_topic}-queue``."""
    if settings.feedback.queue_url:
        return urlsplit(settings.feedback.queue_url).path.rstrip("/").rsplit("/", 1)[-1]
    return f"{settings.ses.sns_topic}-queue"


def send_policy(queue_arn: str, topic_arn: str) -> dict:
    """Only the feedback topic may put messages on the queue."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": POLICY_SID, "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]}


def _find_queue(sqs, name: str) -> str | None:
    from botocore.exceptions import ClientError

    from mailer.aws.client import error_code

    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if "NonExistentQueue" in error_code(exc) or error_code(exc) == "QueueDoesNotExist":
            return None
        raise


def _arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def setup_queue(sqs, sns, topic_arn: str | None, settings: Settings, dry_run: bool, step) -> tuple[list, str]:
    """Steps taken (made by ``step(subject, state, detail)``) and the queue URL ('' in a dry run without one)."""
    name = queue_name(settings)
    created = "would create" if dry_run else "created"
    steps = []

    dlq_url = _find_queue(sqs, f"{name}-dlq")
    if dlq_url is None and not dry_run:
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq",
                                   Attributes={"MessageRetentionPeriod": str(RETENTION)})["QueueUrl"]
        steps.append(step(f"SQS dead-letter queue {name}-dlq", created, dlq_url))
    else:
        steps.append(step(f"SQS dead-letter queue {name}-dlq", "ok" if dlq_url else created, dlq_url or ""))

    url = _find_queue(sqs, name)
    if url is None and dry_run:
        steps.append(step(f"SQS queue {name} (redrive after {MAX_RECEIVES} receives, SNS may send)", created))
        return steps + [step(f"SQS subscription of {name} to the topic", created)], ""
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": str(RETENTION),
                                                           "VisibilityTimeout": str(settings.feedback.visibility_timeout)})["QueueUrl"]
        steps.append(step(f"SQS queue {name}", created, url))
    else:
        steps.append(step(f"SQS queue {name}", "ok", url))
    queue_arn = _arn(sqs, url)
    steps.append(_attributes(sqs, url, queue_arn, _arn(sqs, dlq_url) if dlq_url else "", topic_arn, dry_run, step))
    if topic_arn:
        steps.append(_subscription(sns, topic_arn, queue_arn, name, dry_run, step))
    return steps, url


def _attributes(sqs, url, queue_arn, dlq_arn, topic_arn, dry_run, step):
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    wanted = {}
    if dlq_arn:
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES}
        have = json.loads(current.get("RedrivePolicy") or "{}")
        if have.get("deadLetterTargetArn") != dlq_arn or int(have.get("maxReceiveCount", 0)) != MAX_RECEIVES:
            wanted["RedrivePolicy"] = json.dumps(redrive)
    if topic_arn:
        policy = send_policy(queue_arn, topic_arn)
        if json.loads(current.get("Policy") or "{}") != policy:
            wanted["Policy"] = json.dumps(policy)
    subject = "SQS queue redrive policy and SNS send policy"
    if not wanted:
        return step(subject, "ok")
    if not dry_run:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=wanted)
    return step(subject, ("would update" if dry_run else "updated"), ", ".join(sorted(wanted)))


def _subscription(sns, topic_arn, queue_arn, name, dry_run, step):
    subject = f"SQS subscription of {name} to the topic"
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs" and sub.get("Endpoint") == queue_arn:
                return step(subject, "ok")
    if not dry_run:
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                      Attributes={"RawMessageDelivery": "false"}, ReturnSubscriptionArn=True)
    return step(subject, "would create" if dry_run else "created")
