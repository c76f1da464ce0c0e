"""SES feedback from an SQS queue: no public endpoint needed.

SES events reach the queue through an SNS subscription (the body is an SNS
envelope, ``Type: Notification`` with the event JSON in ``Message``) or
straight from an SES event destination (the body is the event JSON itself).
Both go through the webhook's parsing (``events.py``) and applying
(``apply.py``), with the same replay protection: the SNS MessageId, or for a
raw event the SQS MessageId, is claimed once in ``sns_messages``.

A message is deleted only after it was applied (or found already applied).
One that cannot be parsed is left on the queue, so after ``maxReceiveCount``
receives the queue's redrive policy moves it to the dead-letter queue; it is
reported, never silently dropped. A database error leaves the message too: it
comes back after the visibility timeout.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field

from mailer.aws.client import aws_errors, client
from mailer.config import Settings
from mailer.feedback import apply as applyfeedback
from mailer.feedback.events import NotAnSesEvent, SesEvent, events_of, ses_document

log = logging.getLogger("twir_mail.feedback.queue")
BATCH = 10  # SQS's maximum per ReceiveMessage


@dataclass
class PollResult:
    received: int = 0
    applied: int = 0  # messages applied now
    repeated: int = 0  # already applied before (a replay): deleted, not applied again
    events: int = 0
    bad: list[str] = field(default_factory=list)  # "MessageId: why" of messages left on the queue

    def add(self, other: "PollResult") -> None:
        self.received += other.received
        self.applied += other.applied
        self.repeated += other.repeated
        self.events += other.events
        self.bad += other.bad


def decode(body: str, sqs_message_id: str) -> tuple[str, list[SesEvent]]:
    """(replay key, events) of one SQS body; NotAnSesEvent if it is neither shape."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise NotAnSesEvent("body is not JSON") from None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        if not doc.get("MessageId"):
            raise NotAnSesEvent("SNS envelope without MessageId")
        return str(doc["MessageId"]), events_of(ses_document(doc["Message"]))
    # Raw delivery (SES event destination, or SNS with RawMessageDelivery): the event itself.
    return f"sqs:{sqs_message_id}", events_of(ses_document(body))


class FeedbackQueue:
    """Receives, applies and deletes SES feedback from ``feedback.queue_url``."""

    def __init__(self, store, settings: Settings, sqs=None):
        self.store, self.settings = store, settings
        self.url = settings.feedback.queue_url
        self.sqs = sqs or client(settings, "sqs")

    def poll_once(self, wait_seconds: int | None = None) -> PollResult:
        """One ReceiveMessage (up to 10 messages), each applied then deleted."""
        wait = self.settings.feedback.wait_seconds if wait_seconds is None else wait_seconds
        with aws_errors(f"SQS queue {self.url}"):
            messages = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=wait,
                VisibilityTimeout=self.settings.feedback.visibility_timeout).get("Messages", [])
        result = PollResult(received=len(messages))
        for msg in messages:
            try:
                key, events = decode(msg.get("Body", ""), msg["MessageId"])
            except NotAnSesEvent as exc:
                result.bad.append(f"{msg['MessageId']}: {exc}")
                log.warning("feedback queue: left message %s on the queue: %s", msg["MessageId"], exc)
                continue
            # A StoreError propagates: this and the later messages stay on the queue.
            if applyfeedback.apply_notification(self.store, self.settings, key, events):
                result.applied += 1
                result.events += len(events)
            else:
                result.repeated += 1
            self._delete(msg)
        return result

    def _delete(self, msg: dict) -> None:
        with aws_errors(f"SQS queue {self.url}: delete"):
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=msg["ReceiptHandle"])

    def drain(self, wait_seconds: int = 1) -> PollResult:
        """Poll until a receive comes back empty (``feedback poll --once``)."""
        total = PollResult()
        while True:
            result = self.poll_once(wait_seconds)
            total.add(result)
            if result.received == 0 or result.received == len(result.bad):
                return total


class BackgroundPoller:
    """Applies queued feedback in a thread while a send runs (so the guard sees it)."""

    def __init__(self, queue: FeedbackQueue, wait_seconds: int = 1):
        self.queue, self.wait = queue, wait_seconds
        self.total = PollResult()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feedback-poller", daemon=True)

    def __enter__(self) -> "BackgroundPoller":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.total.add(self.queue.poll_once(self.wait))
            except Exception as exc:  # keep polling: the send must not die of a feedback hiccup
                self.errors.append(str(exc))
                log.warning("feedback queue: %s", exc)
                self._stop.wait(min(30, 2 ** min(len(self.errors), 5)))
