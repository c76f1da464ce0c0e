"""Read-only figures about campaigns and the list: the guard's rates, `campaigns show`, `report`.

``ReportOps`` is mixed into ``Store``. Feedback is tied to a campaign through the
SES MessageId recorded on its delivery rows (``deliveries.message_id``): the
``feedback_events`` audit rows say hard or soft bounce and complaint per message,
``deliveries.event`` the strongest event per message (delivery, delay, reject...).
Time buckets are computed by the database (UTC), one expression per dialect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from mailer.models import CampaignKind, DeliveryEvent as DE, DeliveryStatus as DS, FeedbackKind as FK, Status
from mailer.store.engine import as_utc
from mailer.store.schema import campaigns as C, deliveries as D, feedback_events as F, history as H

# date_trunc unit and text format per bucket, on each dialect.
_PG_FORMAT = {"minute": "YYYY-MM-DD HH24:MI", "hour": "YYYY-MM-DD HH24:00", "day": "YYYY-MM-DD",
              "week": "YYYY-MM-DD"}
_SQLITE = {"minute": ("strftime", "%Y-%m-%d %H:%M"), "hour": ("strftime", "%Y-%m-%d %H:00"),
           "day": ("date", None), "week": ("date", "weekday 0")}


@dataclass(frozen=True)
class FeedbackCounts:
    """Messages of a campaign sent (since a moment) and how many drew each kind of feedback."""

    sent: int
    hard_bounces: int
    soft_bounces: int
    complaints: int

    def rate(self, n: int) -> float:
        return n / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class CampaignStats:
    """Everything `campaigns show` prints about one campaign's deliveries."""

    statuses: dict[str, int]  # queued, sending (unknown), sent, failed, skipped
    events: dict[str, int]  # strongest SES event per message: delivery, delivery-delay, reject, bounce, complaint
    feedback: FeedbackCounts
    first_sent: dt.datetime | None
    last_sent: dt.datetime | None

    @property
    def delivered(self) -> int:
        # A complaint comes from a mailbox the message reached.
        return self.events[DE.DELIVERY.value] + self.events[DE.COMPLAINT.value]


@dataclass
class WeekRow:
    week: str  # Monday, YYYY-MM-DD
    counts: dict[str, int] = field(default_factory=dict)  # subscribed, unsubscribed, bounced, complained


class ReportOps:
    def _bucket(self, column, unit: str):
        """``column`` truncated to ``unit`` as text, in UTC ('2026-11-30 17:05', weeks start on Monday)."""
        if self.dialect == "postgresql":
            utc = sa.func.timezone("UTC", column)
            return sa.func.to_char(sa.func.date_trunc(unit, utc), _PG_FORMAT[unit])
        fn, arg = _SQLITE[unit]
        if unit == "week":  # the Sunday ending the week, minus six days
            return sa.func.date(column, "weekday 0", "-6 days")
        return sa.func.strftime(arg, column) if fn == "strftime" else sa.func.date(column)

    def campaign_feedback(self, campaign_id: int, since: dt.datetime | None = None) -> FeedbackCounts:
        """Messages sent (at or after ``since``) and how many of them hard/soft bounced or drew a complaint."""
        sent_filter = [D.c.campaign_id == campaign_id, D.c.status == DS.SENT.value]
        if since is not None:
            sent_filter.append(D.c.sent_at >= since)
        # One message counts once per kind, however many notifications repeat it. IN (subquery),
        # not a join: feedback_events has no index on ses_message_id, and a join lets SQLite scan
        # it once per delivery; this way it is read once against the campaign's message ids.
        ids = sa.select(D.c.message_id).where(*sent_filter, D.c.message_id.is_not(None))
        per_kind = (sa.select(F.c.kind, sa.func.count(sa.distinct(F.c.ses_message_id)))
                    .where(F.c.ses_message_id.in_(ids)).group_by(F.c.kind))
        with self._read() as conn:
            sent = conn.execute(sa.select(sa.func.count()).select_from(D).where(*sent_filter)).scalar_one()
            kinds = dict(conn.execute(per_kind).all())
        return FeedbackCounts(sent=sent, hard_bounces=kinds.get(FK.BOUNCE_PERMANENT.value, 0),
                              soft_bounces=kinds.get(FK.BOUNCE_TRANSIENT.value, 0),
                              complaints=kinds.get(FK.COMPLAINT.value, 0))

    def campaign_stats(self, campaign_id: int) -> CampaignStats:
        where = D.c.campaign_id == campaign_id
        with self._read() as conn:
            events = dict(conn.execute(sa.select(D.c.event, sa.func.count()).where(where, D.c.event.is_not(None))
                                       .group_by(D.c.event)).all())
            first, last = conn.execute(sa.select(sa.func.min(D.c.sent_at), sa.func.max(D.c.sent_at))
                                       .where(where, D.c.status == DS.SENT.value)).one()
        return CampaignStats(statuses=self.delivery_counts(campaign_id),
                             events={e.value: events.get(e.value, 0) for e in DE},
                             feedback=self.campaign_feedback(campaign_id),
                             first_sent=_ts(first), last_sent=_ts(last))

    def sent_per_minute(self, campaign_id: int) -> list[tuple[str, int]]:
        """(UTC minute, messages handed to the transport) of a campaign, in time order."""
        bucket = self._bucket(D.c.sent_at, "minute").label("b")
        query = (sa.select(bucket, sa.func.count()).where(D.c.campaign_id == campaign_id, D.c.status == DS.SENT.value,
                                                          D.c.sent_at.is_not(None))
                 .group_by(bucket).order_by(bucket))
        with self._read() as conn:
            return [(b, n) for b, n in conn.execute(query)]

    def campaign_events_over_time(self, campaign_id: int, unit: str = "hour") -> list[tuple[str, str, int]]:
        """(UTC bucket, strongest SES event, messages) of a campaign: its feedback as it arrived."""
        bucket = self._bucket(D.c.event_at, unit).label("b")
        query = (sa.select(bucket, D.c.event, sa.func.count())
                 .where(D.c.campaign_id == campaign_id, D.c.event.is_not(None), D.c.event_at.is_not(None))
                 .group_by(bucket, D.c.event).order_by(bucket))
        with self._read() as conn:
            return [(b, e, n) for b, e, n in conn.execute(query)]

    def subscribers_per_week(self) -> list[WeekRow]:
        """Per week (Monday, UTC): status changes to subscribed, unsubscribed, bounced, complained."""
        bucket = self._bucket(H.c.at, "week").label("b")
        kinds = [Status.SUBSCRIBED.value, Status.UNSUBSCRIBED.value, Status.BOUNCED.value, Status.COMPLAINED.value]
        query = (sa.select(bucket, H.c.new_status, sa.func.count()).where(H.c.new_status.in_(kinds))
                 .group_by(bucket, H.c.new_status).order_by(bucket))
        rows: dict[str, WeekRow] = {}
        with self._read() as conn:
            for week, status, n in conn.execute(query):
                rows.setdefault(week, WeekRow(week, dict.fromkeys(kinds, 0))).counts[status] = n
        return list(rows.values())

    def unsubscribes_by_issue(self, limit: int = 10) -> list[tuple[int, int, int]]:
        """(issue, unsubscribes, complaints) of the issues most followed by readers leaving.

        A departure is blamed on the last issue sent to that subscriber before it (real sends only).
        """
        # A join ranked per departure, not a correlated subquery: PostgreSQL would scan deliveries
        # (no index on subscriber_id) once per departure (70 s at 500k deliveries; this: well under 1 s).
        ranked = (sa.select(C.c.issue_number.label("issue"), H.c.new_status.label("status"),
                            sa.func.row_number().over(partition_by=H.c.id,
                                                      order_by=(D.c.sent_at.desc(), D.c.id.desc())).label("rn"))
                  .select_from(H.join(D, D.c.subscriber_id == H.c.subscriber_id).join(C, C.c.id == D.c.campaign_id))
                  .where(H.c.new_status.in_([Status.UNSUBSCRIBED.value, Status.COMPLAINED.value]),
                         D.c.status == DS.SENT.value, D.c.sent_at <= H.c.at, C.c.kind == CampaignKind.SEND.value)
                  .subquery())
        left = sa.select(ranked.c.issue, ranked.c.status).where(ranked.c.rn == 1).subquery()
        unsub = sa.func.sum(sa.case((left.c.status == Status.UNSUBSCRIBED.value, 1), else_=0))
        compl = sa.func.sum(sa.case((left.c.status == Status.COMPLAINED.value, 1), else_=0))
        query = (sa.select(left.c.issue, unsub, compl).group_by(left.c.issue)
                 .order_by((unsub + compl).desc(), left.c.issue.desc()).limit(limit))
        with self._read() as conn:
            return [(int(i), int(u), int(c)) for i, u, c in conn.execute(query)]


def _ts(value) -> dt.datetime | None:
    # SQLite hands aggregates (min/max) back as text, not through the DateTime type.
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return as_utc(value)
