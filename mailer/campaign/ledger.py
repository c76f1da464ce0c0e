"""The delivery ledger: campaigns and one ``deliveries`` row per recipient.

Row life: ``queued`` -> ``sending`` (claimed and committed *before* the
transport call) -> ``sent`` / ``failed`` / ``skipped``. A crash leaves at
most the in-flight rows in ``sending``: they are "unknown" (maybe sent) and
are only requeued on request (``requeue_unknown``).

Claims take ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several processes
can work through one campaign; on SQLite the single writer lock
(``BEGIN IMMEDIATE``) serialises claims.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import CampaignError
from ..models import CampaignStatus, DeliveryStatus as DS, Status
from ..store import Store
from ..store.engine import as_utc, utcnow
from ..store.schema import campaigns as C, deliveries as D, list_members as M, lists as L, subscribers as S

ERROR_MAX = 500


@dataclass(frozen=True)
class Campaign:
    id: int
    kind: str  # send | test
    issue_number: int
    issue_path: str
    list_id: int | None
    list_name: str | None
    subject: str
    status: str
    transport: str
    html_bytes: int
    created_at: dt.datetime
    finished_at: dt.datetime | None
    pause_reason: str | None


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    subscriber_id: int | None
    email: str


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    status: str  # sent | failed | queued (released unsent)
    message_id: str | None = None
    error: str | None = None


def _campaign(row) -> Campaign:
    return Campaign(id=row.id, kind=row.kind, issue_number=row.issue_number, issue_path=row.issue_path,
                    list_id=row.list_id, list_name=row.list_name, subject=row.subject, status=row.status,
                    transport=row.transport, html_bytes=row.html_bytes, created_at=as_utc(row.created_at),
                    finished_at=as_utc(row.finished_at), pause_reason=row.pause_reason)


_SELECT = sa.select(C, L.c.name.label("list_name")).select_from(C.outerjoin(L, L.c.id == C.c.list_id))


def get(store: Store, campaign_id: int) -> Campaign:
    with store._read() as conn:
        row = conn.execute(_SELECT.where(C.c.id == campaign_id)).first()
    if row is None:
        raise CampaignError(f"no campaign with id {campaign_id}")
    return _campaign(row)


def find_send(store: Store, issue_number: int, list_id: int) -> Campaign | None:
    """The real (non-test) campaign of an issue on a list, if any."""
    with store._read() as conn:
        row = conn.execute(_SELECT.where(C.c.kind == "send", C.c.issue_number == issue_number,
                                         C.c.list_id == list_id)).first()
    return _campaign(row) if row else None


def all_campaigns(store: Store) -> list[Campaign]:
    with store._read() as conn:
        return [_campaign(r) for r in conn.execute(_SELECT.order_by(C.c.id))]


def create(store: Store, *, kind: str, issue_number: int, issue_path: str, list_name: str | None,
           subject: str, transport: str, html_bytes: int, addresses: list[str] = ()) -> Campaign:
    """Record a campaign and freeze its recipients, in one transaction.

    A list campaign freezes the list's subscribed members; ``addresses``
    (test sends) become rows without a subscriber.
    """
    now = utcnow()
    try:
        with store._write() as conn:
            list_id = store.list_id(list_name, conn) if list_name else None
            if kind == "send":
                _refuse_second_send(conn, issue_number, list_id, list_name)
            cid = conn.execute(C.insert().values(
                kind=kind, issue_number=issue_number, issue_path=issue_path, list_id=list_id, subject=subject,
                status=CampaignStatus.SENDING.value, transport=transport, html_bytes=html_bytes,
                created_at=now, updated_at=now).returning(C.c.id)).scalar_one()
            if list_id is not None:
                members = (sa.select(sa.literal(cid), S.c.id, S.c.email, sa.literal(DS.QUEUED.value))
                           .select_from(S.join(M, M.c.subscriber_id == S.c.id))
                           .where(M.c.list_id == list_id, S.c.status == Status.SUBSCRIBED.value,
                                  S.c.email.is_not(None)).order_by(S.c.id))
                conn.execute(D.insert().from_select(["campaign_id", "subscriber_id", "email", "status"], members))
            if addresses:
                conn.execute(D.insert(), [{"campaign_id": cid, "email": a, "status": DS.QUEUED.value}
                                          for a in dict.fromkeys(addresses)])
    except sa.exc.IntegrityError:
        # Another process created the same campaign between our check and insert.
        raise CampaignError(f"issue {issue_number} is already being sent to list {list_name!r}") from None
    return get(store, cid)


def refuse_second_send(store: Store, issue_number: int, list_name: str) -> None:
    """Raise CampaignError if the issue was sent (or is being sent) to the list."""
    with store._read() as conn:
        _refuse_second_send(conn, issue_number, store.list_id(list_name, conn), list_name)


def _refuse_second_send(conn, issue_number: int, list_id: int, list_name: str) -> None:
    row = conn.execute(sa.select(C.c.id, C.c.status).where(
        C.c.kind == "send", C.c.issue_number == issue_number, C.c.list_id == list_id)).first()
    if row is None:
        return
    if row.status == CampaignStatus.DONE.value:
        raise CampaignError(f"issue {issue_number} was already sent to list {list_name!r} (campaign {row.id})")
    raise CampaignError(f"issue {issue_number} has an unfinished campaign {row.id} on list {list_name!r}: "
                        f"continue it with `twir-mail send --resume {row.id}`")


def counts(store: Store, campaign_id: int) -> dict[str, int]:
    with store._read() as conn:
        rows = conn.execute(sa.select(D.c.status, sa.func.count()).where(D.c.campaign_id == campaign_id)
                            .group_by(D.c.status)).all()
    out = {s.value: 0 for s in DS}
    out.update({status: n for status, n in rows})
    return out


def all_counts(store: Store) -> dict[int, dict[str, int]]:
    with store._read() as conn:
        rows = conn.execute(sa.select(D.c.campaign_id, D.c.status, sa.func.count())
                            .group_by(D.c.campaign_id, D.c.status)).all()
    out: dict[int, dict[str, int]] = {}
    for cid, status, n in rows:
        out.setdefault(cid, {s.value: 0 for s in DS})[status] = n
    return out


def failures(store: Store, campaign_id: int, limit: int = 50) -> list[tuple[str | None, str, str | None]]:
    """(address, status, error) of failed and skipped rows."""
    with store._read() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(D.c.email, D.c.status, D.c.error)
            .where(D.c.campaign_id == campaign_id, D.c.status.in_([DS.FAILED.value, DS.SKIPPED.value]))
            .order_by(D.c.id).limit(limit))]


def set_status(store: Store, campaign_id: int, status: CampaignStatus, reason: str | None = None) -> None:
    now = utcnow()
    values = {"status": status.value, "updated_at": now, "pause_reason": reason}
    if status == CampaignStatus.DONE:
        values["finished_at"] = now
    with store._write() as conn:
        conn.execute(C.update().where(C.c.id == campaign_id).values(**values))


def requeue_unknown(store: Store, campaign_id: int) -> int:
    """Rows a crashed run left ``sending`` go back to the queue (they may get a duplicate)."""
    with store._write() as conn:
        return conn.execute(D.update().where(D.c.campaign_id == campaign_id, D.c.status == DS.SENDING.value)
                            .values(status=DS.QUEUED.value, claimed_at=None)).rowcount


def step(store: Store, campaign: Campaign, outcomes: list[Outcome], want: int) -> tuple[list[Claim], int]:
    """Record finished deliveries and claim up to ``want`` more, in one transaction.

    Claimed recipients whose subscriber is no longer subscribed (or left the
    list) are marked ``skipped`` right here, just before their send.
    Returns (claims to send, number skipped).
    """
    with store._write() as conn:
        now = utcnow()
        _record(conn, outcomes, now)
        if want <= 0:
            return [], 0
        pick = (sa.select(D.c.id).where(D.c.campaign_id == campaign.id, D.c.status == DS.QUEUED.value)
                .order_by(D.c.id).limit(want))
        if store.dialect == "postgresql":
            # A CTE runs exactly once; a plain IN (subquery) may be re-run per row
            # by PostgreSQL and then claim more than ``want`` rows.
            pick = pick.with_for_update(skip_locked=True).cte("picked")
            target = D.c.id == pick.c.id
        else:
            target = D.c.id.in_(pick)
        rows = conn.execute(
            D.update().where(target, D.c.status == DS.QUEUED.value)
            .values(status=DS.SENDING.value, claimed_at=now, attempts=D.c.attempts + 1)
            .returning(D.c.id, D.c.subscriber_id, D.c.email)).all()
        claims = [Claim(r.id, r.subscriber_id, r.email) for r in sorted(rows)]
        gone = _unsubscribed(conn, campaign, claims)
        if gone:
            conn.execute(D.update().where(D.c.id == sa.bindparam("b_id")).values(
                status=DS.SKIPPED.value, error=sa.bindparam("b_error")),
                [{"b_id": did, "b_error": why} for did, why in gone.items()])
        return [c for c in claims if c.delivery_id not in gone], len(gone)


def _record(conn, outcomes: list[Outcome], now) -> None:
    if not outcomes:
        return
    conn.execute(D.update().where(D.c.id == sa.bindparam("b_id"), D.c.status == DS.SENDING.value).values(
        status=sa.bindparam("b_status"), message_id=sa.bindparam("b_mid"), error=sa.bindparam("b_error"),
        sent_at=sa.bindparam("b_at"),
        claimed_at=sa.case((sa.bindparam("b_status") == DS.QUEUED.value, None), else_=D.c.claimed_at)),
        [{"b_id": o.delivery_id, "b_status": o.status, "b_mid": o.message_id,
          "b_error": (o.error or "")[:ERROR_MAX] or None,
          "b_at": now if o.status == DS.SENT.value else None} for o in outcomes])


def _unsubscribed(conn, campaign: Campaign, claims: list[Claim]) -> dict[int, str]:
    """delivery id -> why, for claimed recipients who must not get this message any more."""
    ids = [c.subscriber_id for c in claims if c.subscriber_id is not None]
    query = sa.select(S.c.id, S.c.status, S.c.email)
    if campaign.list_id is not None:
        member = sa.exists().where(M.c.subscriber_id == S.c.id, M.c.list_id == campaign.list_id)
        query = query.add_columns(member.label("member"))
    else:
        query = query.add_columns(sa.true().label("member"))
    state = {r.id: r for r in conn.execute(query.where(S.c.id.in_(ids)))}
    gone = {}
    for c in claims:
        if c.subscriber_id is None:
            if campaign.kind == "send":  # the subscriber row was deleted (ON DELETE SET NULL)
                gone[c.delivery_id] = "subscriber was removed"
            continue
        row = state.get(c.subscriber_id)
        if row is None or row.email is None:
            gone[c.delivery_id] = "subscriber was removed"
        elif row.status != Status.SUBSCRIBED.value:
            gone[c.delivery_id] = f"subscriber is {row.status}"
        elif not row.member:
            gone[c.delivery_id] = "subscriber left the list"
    return gone
