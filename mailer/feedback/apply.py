"""Turn SES feedback (bounces, complaints, deliveries) into subscriber and delivery state.

Called by the webhook once an SNS message has been verified. Each SNS
MessageId is claimed in ``sns_messages`` in the same transaction that applies
its events, so a repeated delivery is applied once, and if applying fails
nothing (not even the claim) is kept and SNS's retry applies it again. One
transaction per notification also keeps the database round trips down.

- Permanent bounce: the subscriber becomes ``bounced``.
- Transient (or undetermined) bounce: counted in ``feedback_events``; after
  ``[webhook] transient_bounce_limit`` within the window, ``bounced``.
- Complaint: ``complained`` (even over ``unsubscribed``: it is the stronger mark).
- Every event is written on the campaign's delivery row, found by SES MessageId.
"""

from __future__ import annotations

import datetime as dt
import logging

from mailer.config import Settings
from mailer.errors import SubscriberError
from mailer.feedback.events import EventKind, SesEvent
from mailer.models import DeliveryEvent, FeedbackKind, Status
from mailer.store.engine import utcnow

log = logging.getLogger("twir_mail.feedback")
# The SES events written on a delivery row (DeliveryEvent ranks them: a late "delivery" must not hide a bounce).
DELIVERY_EVENTS = {EventKind.DELIVERY_DELAY: DeliveryEvent.DELIVERY_DELAY, EventKind.DELIVERY: DeliveryEvent.DELIVERY,
                   EventKind.REJECT: DeliveryEvent.REJECT, EventKind.BOUNCE: DeliveryEvent.BOUNCE,
                   EventKind.COMPLAINT: DeliveryEvent.COMPLAINT}


def apply_notification(store, settings: Settings, sns_message_id: str, events: list[SesEvent],
                       now: dt.datetime | None = None) -> bool:
    """Apply one SNS notification's events once; False if this MessageId was seen before."""
    now = now or utcnow()
    with store.transaction() as conn:
        if not store.claim_sns_message(sns_message_id, now, conn=conn):
            return False
        _apply_all(store, settings, events, now, conn)
    return True


def apply_events(store, settings: Settings, events: list[SesEvent], now: dt.datetime | None = None) -> None:
    """Apply events without SNS de-duplication (callers that have their own, e.g. a queue consumer)."""
    with store.transaction() as conn:
        _apply_all(store, settings, events, now or utcnow(), conn)


def _apply_all(store, settings: Settings, events: list[SesEvent], now: dt.datetime, conn) -> None:
    for event in events:
        apply_event(store, settings, event, now, conn=conn)


def feedback_kind(event: SesEvent) -> FeedbackKind | None:
    """What an event says about the subscriber (None: nothing, e.g. a delivery)."""
    if event.kind is EventKind.COMPLAINT:
        return FeedbackKind.COMPLAINT
    if event.kind is EventKind.BOUNCE:
        return FeedbackKind.BOUNCE_PERMANENT if event.permanent_bounce else FeedbackKind.BOUNCE_TRANSIENT
    return None


def apply_event(store, settings: Settings, event: SesEvent, now: dt.datetime, *, conn=None) -> None:
    """One event; ``conn``: the caller's transaction (None: each write commits on its own)."""
    if event.kind in DELIVERY_EVENTS:
        store.record_delivery_event(event.message_id, DELIVERY_EVENTS[event.kind], now, conn=conn)
    kind = feedback_kind(event)
    if kind is None:
        return
    try:
        sub = store.get(event.address, conn=conn)
    except SubscriberError:
        sub = None  # not even an address: still worth the audit row
    store.log_feedback(sub.id if sub else None, kind, event.message_id, event.detail, now, conn=conn)
    if sub is None or sub.email is None:
        return
    if kind is FeedbackKind.COMPLAINT:
        if sub.status is not Status.COMPLAINED:
            store.set_status(sub.id, Status.COMPLAINED, reason="ses-complaint", detail=event.detail or None, conn=conn)
    elif kind is FeedbackKind.BOUNCE_PERMANENT:
        if not sub.status.suppressed:
            store.set_status(sub.id, Status.BOUNCED, reason="ses-bounce", detail=event.detail or None, conn=conn)
    elif not sub.status.suppressed:
        _maybe_suppress_transient(store, settings, sub.id, now, conn)


def _maybe_suppress_transient(store, settings: Settings, subscriber_id: int, now: dt.datetime, conn) -> None:
    days = settings.webhook.transient_bounce_window_days
    count = store.count_feedback(subscriber_id, FeedbackKind.BOUNCE_TRANSIENT, now - dt.timedelta(days=days),
                                 conn=conn)
    limit = settings.webhook.transient_bounce_limit
    if limit and count >= limit:
        store.set_status(subscriber_id, Status.BOUNCED, reason="ses-transient-bounces",
                         detail=f"{count} transient bounces within {days} days", conn=conn)
