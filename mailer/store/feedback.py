"""SES feedback's SQL: SNS message de-duplication, the feedback audit log, delivery events.

``FeedbackOps`` is mixed into ``Store``; mailer/feedback/apply.py decides what an
event means and calls these methods.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from mailer.models import DeliveryEvent, FeedbackKind
from mailer.store.schema import deliveries, feedback_events, sns_messages

MESSAGE_ID_MAX = 100  # schema: sns_messages.message_id
SES_ID_MAX = 200  # schema: deliveries.message_id, feedback_events.ses_message_id


class FeedbackOps:
    # Each method takes an optional ``conn``: the webhook applies one notification
    # (claim + all its events) in a single transaction (Store.transaction()).
    def claim_sns_message(self, message_id: str, now: dt.datetime, *, conn: sa.Connection | None = None) -> bool:
        """Record an SNS MessageId; False if it was already processed."""
        with self._using(conn) as conn:
            # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
            return conn.execute(self._insert(sns_messages).values(
                message_id=message_id[:MESSAGE_ID_MAX], received_at=now).on_conflict_do_nothing()
                .returning(sns_messages.c.message_id)).first() is not None

    def log_feedback(self, subscriber_id: int | None, kind: FeedbackKind, ses_message_id: str,
                     detail: str | None, now: dt.datetime, *, conn: sa.Connection | None = None) -> None:
        with self._using(conn) as conn:
            conn.execute(sa.insert(feedback_events).values(
                subscriber_id=subscriber_id, kind=FeedbackKind(kind).value, at=now,
                ses_message_id=ses_message_id[:SES_ID_MAX] or None, detail=detail or None))

    def count_feedback(self, subscriber_id: int, kind: FeedbackKind, since: dt.datetime, *,
                       conn: sa.Connection | None = None) -> int:
        with self._using(conn, write=False) as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(feedback_events).where(
                feedback_events.c.subscriber_id == subscriber_id,
                feedback_events.c.kind == FeedbackKind(kind).value,
                feedback_events.c.at >= since,
            )).scalar_one()

    def record_delivery_event(self, ses_message_id: str, event: DeliveryEvent, now: dt.datetime, *,
                              conn: sa.Connection | None = None) -> int:
        """Write the event on the delivery row(s) of this SES MessageId, unless a stronger one is there."""
        if not ses_message_id:
            return 0
        weaker = [e.value for e in DeliveryEvent if e.rank <= event.rank]
        with self._using(conn) as conn:
            return conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.message_id == ses_message_id[:SES_ID_MAX],
                       sa.or_(deliveries.c.event.is_(None), deliveries.c.event.in_(weaker)))
                .values(event=event.value, event_at=now)
            ).rowcount
