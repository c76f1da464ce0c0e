"""Turn SES feedback (bounces, complaints, deliveries) into subscriber and delivery state.

Called by the webhook once an SNS message has been verified. Each SNS
MessageId is claimed in ``sns_messages`` first, so a repeated delivery is
applied once; if applying fails the claim is released and SNS's retry
applies it again.

- Permanent bounce: the subscriber becomes ``bounced``.
- Transient (or undetermined) bounce: counted in ``feedback_events``; after
  ``[webhook] transient_bounce_limit`` within the window, ``bounced``.
- Complaint: ``complained`` (even over ``unsubscribed``: it is the stronger mark).
- Every event is written on the campaign's delivery row, found by SES MessageId.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from mailer.config import Settings
from mailer.errors import SubscriberError
from mailer.feedback.events import SesEvent
from mailer.models import Status
from mailer.store.schema import deliveries, feedback_events, sns_messages

log = logging.getLogger("twir_mail.feedback")
# deliveries.event names, weakest first: a late "delivery" must not hide a bounce.
EVENT_RANK = {"delivery-delay": 0, "delivery": 1, "reject": 2, "bounce": 3, "complaint": 4}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def claim(engine: sa.Engine, message_id: str, now: dt.datetime) -> bool:
    """Record an SNS MessageId; False if it was already processed."""
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(sns_messages).values(message_id=message_id[:100], received_at=now))
        return True
    except sa.exc.IntegrityError:
        return False


def release(engine: sa.Engine, message_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(sns_messages).where(sns_messages.c.message_id == message_id[:100]))


def apply_notification(store, settings: Settings, sns_message_id: str, events: list[SesEvent],
                       now: dt.datetime | None = None) -> bool:
    """Apply one SNS notification's events once; False if this MessageId was seen before."""
    now = now or _now()
    if not claim(store.engine, sns_message_id, now):
        return False
    try:
        apply_events(store, settings, events, now)
    except BaseException:
        release(store.engine, sns_message_id)
        raise
    return True


def apply_events(store, settings: Settings, events: list[SesEvent], now: dt.datetime | None = None) -> None:
    """Apply events without SNS de-duplication (callers that have their own, e.g. a queue consumer)."""
    now = now or _now()
    for event in events:
        apply_event(store, settings, event, now)


def apply_event(store, settings: Settings, event: SesEvent, now: dt.datetime) -> None:
    name = event.kind.replace("_", "-")
    if name in EVENT_RANK:
        record_delivery_event(store.engine, event.message_id, name, now)
    if event.kind not in ("bounce", "complaint"):
        return
    try:
        sub = store.get(event.address)
    except SubscriberError:
        sub = None  # not even an address: still worth the audit row
    kind = "complaint" if event.kind == "complaint" else (
        "bounce-permanent" if event.permanent_bounce else "bounce-transient")
    _log_feedback(store.engine, sub.id if sub else None, kind, event, now)
    if sub is None or sub.email is None:
        return
    if kind == "complaint":
        if sub.status is not Status.COMPLAINED:
            store.set_status(sub.id, Status.COMPLAINED, reason="ses-complaint", detail=event.detail or None)
    elif kind == "bounce-permanent":
        if not sub.status.suppressed:
            store.set_status(sub.id, Status.BOUNCED, reason="ses-bounce", detail=event.detail or None)
    elif not sub.status.suppressed:
        _maybe_suppress_transient(store, settings, sub.id, now)


def _maybe_suppress_transient(store, settings: Settings, subscriber_id: int, now: dt.datetime) -> None:
    days = settings.webhook.transient_bounce_window_days
    with store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(feedback_events).where(
            feedback_events.c.subscriber_id == subscriber_id,
            feedback_events.c.kind == "bounce-transient",
            feedback_events.c.at >= now - dt.timedelta(days=days),
        )).scalar_one()
    limit = settings.webhook.transient_bounce_limit
    if limit and count >= limit:
        store.set_status(subscriber_id, Status.BOUNCED, reason="ses-transient-bounces",
                         detail=f"{count} transient bounces within {days} days")


def _log_feedback(engine: sa.Engine, subscriber_id: int | None, kind: str, event: SesEvent,
                  now: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(feedback_events).values(
            subscriber_id=subscriber_id, kind=kind, at=now,
            ses_message_id=event.message_id[:200] or None, detail=event.detail or None))


def record_delivery_event(engine: sa.Engine, message_id: str, name: str, now: dt.datetime) -> int:
    """Write the event on the delivery row(s) of this SES MessageId, unless a stronger one is there."""
    if not message_id:
        return 0
    weaker = [n for n, rank in EVENT_RANK.items() if rank <= EVENT_RANK[name]]
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.message_id == message_id[:200],
                   sa.or_(deliveries.c.event.is_(None), deliveries.c.event.in_(weaker)))
            .values(event=name, event_at=now)
        )
    return result.rowcount
