"""SES events, normalised: one ``SesEvent`` per recipient from either notification shape.

Identity notifications say ``notificationType``; configuration-set events say
``eventType``. Both come through here, whether they arrived by the SNS webhook
or another route. Nothing here touches the database.
"""

from __future__ import annotations

import json
import re
import enum
from dataclasses import dataclass, field
from typing import Iterable


class EventKind(str, enum.Enum):
    """SES event types, in snake case whichever shape named them (DeliveryDelay -> delivery_delay)."""

    SEND = "send"
    REJECT = "reject"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    DELIVERY = "delivery"
    DELIVERY_DELAY = "delivery_delay"
    OPEN = "open"
    CLICK = "click"
    RENDERING_FAILURE = "rendering_failure"
    SUBSCRIPTION = "subscription"
    OTHER = "other"  # anything SES adds later: parsed, recorded nowhere

    @classmethod
    def _missing_(cls, value):
        return cls.OTHER

@dataclass(frozen=True)
class SesEvent:
    """One recipient's outcome from an SES notification (either shape)."""

    kind: EventKind
    address: str
    message_id: str  # SES MessageId of the message concerned
    bounce_type: str = ""  # Permanent | Transient | Undetermined
    detail: str = ""
    timestamp: str = ""
    tags: dict = field(default_factory=dict)

    @property
    def permanent_bounce(self) -> bool:
        return self.kind is EventKind.BOUNCE and self.bounce_type == "Permanent"


# Where each event type keeps its details in the notification.
BODY_KEYS = {EventKind.DELIVERY_DELAY: "deliveryDelay", EventKind.RENDERING_FAILURE: "failure"}


def _kind(doc: dict) -> EventKind:
    # Identity notifications say notificationType; configuration-set events say eventType.
    raw = doc.get("eventType") or doc.get("notificationType") or ""
    return EventKind(re.sub(r"(?<!^)(?=[A-Z])", "_", str(raw)).lower())  # DeliveryDelay -> delivery_delay


def _addresses(items: Iterable) -> list[str]:
    """Addresses from a list of strings or of ``{"emailAddress": ...}`` objects."""
    out = []
    for item in items if isinstance(items, list) else []:
        value = item.get("emailAddress") if isinstance(item, dict) else item
        if isinstance(value, str) and "@" in value:
            out.append(value)
    return out


class NotAnSesEvent(ValueError):
    """A message that is not an SES notification at all (not JSON, or neither shape)."""


def ses_document(message: str) -> dict:
    """The SES notification in ``message``, or NotAnSesEvent saying why it is not one."""
    try:
        doc = json.loads(message)
    except ValueError:
        raise NotAnSesEvent("not JSON") from None
    if not isinstance(doc, dict) or not (doc.get("eventType") or doc.get("notificationType")):
        raise NotAnSesEvent("JSON without eventType or notificationType")
    return doc


def parse_ses_events(message: str) -> list[SesEvent]:
    """Events in an SNS ``Message`` carrying an SES notification; other messages give []."""
    try:
        return events_of(ses_document(message))
    except NotAnSesEvent:
        return []


def events_of(doc: dict) -> list[SesEvent]:
    """One SesEvent per recipient of an SES notification document (either shape)."""
    kind = _kind(doc)
    mail = doc.get("mail") if isinstance(doc.get("mail"), dict) else {}
    message_id = str(mail.get("messageId", ""))
    tags = mail.get("tags") if isinstance(mail.get("tags"), dict) else {}
    body = doc.get(BODY_KEYS.get(kind, kind.value))
    body = body if isinstance(body, dict) else {}
    stamp = str(body.get("timestamp", mail.get("timestamp", "")))

    def make(address: str, **extra) -> SesEvent:
        return SesEvent(kind=kind, address=address, message_id=message_id, timestamp=stamp, tags=tags, **extra)

    if kind is EventKind.BOUNCE:
        bounce_type = str(body.get("bounceType", ""))
        return [
            make(r["emailAddress"], bounce_type=bounce_type,
                 detail=str(r.get("diagnosticCode") or body.get("bounceSubType", ""))[:500])
            for r in body.get("bouncedRecipients") or []
            if isinstance(r, dict) and "@" in str(r.get("emailAddress", ""))
        ]
    if kind is EventKind.COMPLAINT:
        detail = str(body.get("complaintFeedbackType", ""))
        return [make(a, detail=detail) for a in _addresses(body.get("complainedRecipients"))]
    if kind is EventKind.DELIVERY:
        return [make(a, detail=str(body.get("smtpResponse", ""))[:500]) for a in _addresses(body.get("recipients"))]
    if kind is EventKind.DELIVERY_DELAY:
        detail = str(body.get("delayType", ""))
        return [make(a, detail=detail) for a in _addresses(body.get("delayedRecipients"))]
    # reject, send, open, click, rendering_failure...: about the whole message.
    detail = str(body.get("reason", "")) if kind is EventKind.REJECT else ""
    return [make(a, detail=detail) for a in _addresses(mail.get("destination"))]
