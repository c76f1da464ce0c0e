"""The delivery ledger's SQL: campaigns and one ``deliveries`` row per recipient.

``LedgerOps`` is mixed into ``Store``; the campaign layer (mailer/sending/campaign)
decides what to send and calls these methods, never SQL.

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
import functools
import re

import sqlalchemy as sa

from mailer.errors import CampaignError, StoreConflict
from mailer.models import (MAX_ROW_ID, Campaign, CampaignKind, CampaignStatus, Claim, DeliveryStatus as DS, Outcome,
                           Status)
from mailer.store.addresses import only_new
from mailer.store.engine import as_utc, utcnow
from mailer.store.schema import campaigns as C, deliveries as D, list_members as M, lists as L, subscribers as S

ERROR_MAX = 500


def _campaign(row) -> Campaign:
    return Campaign(id=row.id, kind=CampaignKind(row.kind), issue_number=row.issue_number,
                    issue_path=row.issue_path, list_id=row.list_id, list_name=row.list_name, subject=row.subject,
                    status=CampaignStatus(row.status),
                    transport=row.transport, html_bytes=row.html_bytes, created_at=as_utc(row.created_at),
                    finished_at=as_utc(row.finished_at), pause_reason=row.pause_reason)


_SELECT = sa.select(C, L.c.name.label("list_name")).select_from(C.outerjoin(L, L.c.id == C.c.list_id))


class LedgerOps:
    """Campaign and delivery rows (mixed into Store: uses its transactions and list lookup)."""

    def campaign(self, campaign_id: int) -> Campaign:
        # An id past 64 bits (`campaigns show 99999999999999999999`) cannot be bound: SQLite raises OverflowError.
        if not 0 < campaign_id <= MAX_ROW_ID:
            raise CampaignError(f"no campaign with id {campaign_id}")
        with self._read() as conn:
            row = conn.execute(_SELECT.where(C.c.id == campaign_id)).first()
        if row is None:
            raise CampaignError(f"no campaign with id {campaign_id}")
        return _campaign(row)

    def find_send_campaign(self, issue_number: int, list_id: int) -> Campaign | None:
        """The real (non-test) campaign of an issue on a list, if any."""
        with self._read() as conn:
            row = conn.execute(_SELECT.where(C.c.kind == CampaignKind.SEND.value,
                                             C.c.issue_number == issue_number, C.c.list_id == list_id)).first()
        return _campaign(row) if row else None

    def campaigns(self) -> list[Campaign]:
        with self._read() as conn:
            return [_campaign(r) for r in conn.execute(_SELECT.order_by(C.c.id))]

    def create_campaign(self, *, kind: CampaignKind, issue_number: int, issue_path: str, list_name: str | None,
                        subject: str, transport: str, html_bytes: int, addresses: list[str] = ()) -> Campaign:
        """Record a campaign and freeze its recipients, in one transaction.

        A list campaign freezes the list's subscribed members; ``addresses``
        (test sends) become rows without a subscriber.
        """
        now = utcnow()
        try:
            with self._write() as conn:
                list_id = self.list_id(list_name, conn) if list_name else None
                if kind == CampaignKind.SEND:
                    _refuse_second_send(conn, issue_number, list_id, list_name)
                cid = conn.execute(C.insert().values(
                    kind=CampaignKind(kind).value, issue_number=issue_number, issue_path=issue_path, list_id=list_id, subject=subject,
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
                                              for a in _new_addresses(conn, cid, addresses)])
        except StoreConflict:
            # Another process created the same campaign between our check and insert.
            raise CampaignError(f"issue {issue_number} is already being sent to list {list_name!r}") from None
        return self.campaign(cid)

    def refuse_second_send(self, issue_number: int, list_name: str) -> None:
        """Raise CampaignError if the issue was sent (or is being sent) to the list."""
        with self._read() as conn:
            _refuse_second_send(conn, issue_number, self.list_id(list_name, conn), list_name)

    def delivery_counts(self, campaign_id: int) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(sa.select(D.c.status, sa.func.count()).where(D.c.campaign_id == campaign_id)
                                .group_by(D.c.status)).all()
        out = {s.value: 0 for s in DS}
        out.update({status: n for status, n in rows})
        return out

    def all_delivery_counts(self) -> dict[int, dict[str, int]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(D.c.campaign_id, D.c.status, sa.func.count())
                                .group_by(D.c.campaign_id, D.c.status)).all()
        out: dict[int, dict[str, int]] = {}
        for cid, status, n in rows:
            out.setdefault(cid, {s.value: 0 for s in DS})[status] = n
        return out

    def delivery_failures(self, campaign_id: int, limit: int = 50) -> list[tuple[str | None, str, str | None]]:
        """(address, status, error) of failed and skipped rows."""
        with self._read() as conn:
            return [tuple(r) for r in conn.execute(
                sa.select(D.c.email, D.c.status, D.c.error)
                .where(D.c.campaign_id == campaign_id, D.c.status.in_([DS.FAILED.value, DS.SKIPPED.value]))
                .order_by(D.c.id).limit(limit))]

    def set_campaign_status(self, campaign_id: int, status: CampaignStatus, reason: str | None = None) -> None:
        now = utcnow()
        values = {"status": status.value, "updated_at": now, "pause_reason": reason}
        if status == CampaignStatus.DONE:
            values["finished_at"] = now
        with self._write() as conn:
            conn.execute(C.update().where(C.c.id == campaign_id).values(**values))

    def requeue_unknown(self, campaign_id: int) -> int:
        """Rows a crashed run left ``sending`` go back to the queue (they may get a duplicate)."""
        with self._write() as conn:
            return conn.execute(D.update().where(D.c.campaign_id == campaign_id, D.c.status == DS.SENDING.value)
                                .values(status=DS.QUEUED.value, claimed_at=None)).rowcount

    def ledger_step(self, campaign: Campaign, outcomes: list[Outcome], want: int) -> tuple[list[Claim], int]:
        """Record finished deliveries and claim up to ``want`` more, in one transaction.

        Claimed recipients whose subscriber is no longer subscribed (or left the
        list, or was deleted) are marked ``skipped`` right here, just before their send.
        Returns (claims to send, number skipped).
        """
        dialect = self.dialect
        with self._write() as conn:
            now = _ts(utcnow(), dialect)
            cur = conn.connection.dbapi_connection.cursor()
            try:
                if outcomes:
                    cur.executemany(_sql(_RECORD, dialect), [
                        {"id": o.delivery_id, "st": DS(o.status).value, "mid": o.message_id,
                         "err": (o.error or "")[:ERROR_MAX] or None, "at": now if o.status == DS.SENT else None,
                         "rel": int(o.status == DS.QUEUED)} for o in outcomes])
                if want <= 0:
                    return [], 0
                cur.execute(_sql(_CLAIM[dialect], dialect), {"now": now, "cid": campaign.id, "want": want,
                                                             "list_id": campaign.list_id or 0})
                rows = sorted(cur.fetchall())
                claims, gone = [], {}
                for did, sub_id, email, sub_status, member in rows:
                    why = _gone(campaign, sub_id, email, sub_status, member)
                    if why:
                        gone[did] = why
                    else:
                        claims.append(Claim(did, sub_id, email))
                if gone:
                    cur.executemany(_sql(_SKIP, dialect), [{"id": did, "err": why} for did, why in gone.items()])
                return claims, len(gone)
            finally:
                cur.close()


def _new_addresses(conn, cid: int, addresses: list[str]) -> list[str]:
    """Test-send addresses not already frozen (as a list member or typed twice, in any case)."""
    return only_new(addresses, conn.execute(sa.select(D.c.email).where(D.c.campaign_id == cid)).scalars())


def _refuse_second_send(conn, issue_number: int, list_id: int, list_name: str) -> None:
    row = conn.execute(sa.select(C.c.id, C.c.status).where(
        C.c.kind == CampaignKind.SEND.value, C.c.issue_number == issue_number, C.c.list_id == list_id)).first()
    if row is None:
        return
    if row.status == CampaignStatus.DONE.value:
        raise CampaignError(f"issue {issue_number} was already sent to list {list_name!r} (campaign {row.id})")
    raise CampaignError(f"issue {issue_number} has an unfinished campaign {row.id} on list {list_name!r}: "
                        f"continue it with `twir-mail send --resume {row.id}`")


# The hot path runs plain SQL straight on the driver's cursor: at thousands of
# messages per second, SQLAlchemy's per-statement work costs more than SQLite.
_CHECK = """
  (SELECT s.status FROM subscribers s WHERE s.id = deliveries.subscriber_id AND s.email IS NOT NULL),
  EXISTS (SELECT 1 FROM list_members m WHERE m.subscriber_id = deliveries.subscriber_id
          AND m.list_id = :list_id)"""
_SET = "SET status = 'sending', claimed_at = :now, attempts = attempts + 1"
_PICK = "SELECT id FROM deliveries WHERE campaign_id = :cid AND status = 'queued' ORDER BY id LIMIT :want"
_CLAIM = {
    "sqlite": f"UPDATE deliveries {_SET} WHERE id IN ({_PICK}) AND status = 'queued' "
              f"RETURNING id, subscriber_id, email, {_CHECK}",
    # A CTE runs exactly once (a plain IN (subquery) may be re-run per row and
    # claim more than :want); SKIP LOCKED lets several processes share the queue.
    "postgresql": f"WITH picked AS ({_PICK} FOR UPDATE SKIP LOCKED) UPDATE deliveries {_SET} FROM picked "
                  f"WHERE deliveries.id = picked.id AND deliveries.status = 'queued' "
                  f"RETURNING deliveries.id, deliveries.subscriber_id, deliveries.email, {_CHECK}",
}
_RECORD = ("UPDATE deliveries SET status = :st, message_id = :mid, error = :err, sent_at = :at, "
           "claimed_at = CASE WHEN :rel = 1 THEN NULL ELSE claimed_at END WHERE id = :id AND status = 'sending'")
_SKIP = "UPDATE deliveries SET status = 'skipped', error = :err WHERE id = :id"


@functools.lru_cache(maxsize=None)
def _sql(statement: str, dialect: str) -> str:
    """sqlite3 takes :name parameters, psycopg %(name)s."""
    return statement if dialect == "sqlite" else re.sub(r"(?<!:):(\w+)", r"%(\1)s", statement)


def _ts(now: dt.datetime, dialect: str):
    # What SQLAlchemy's DateTime stores on SQLite (naive UTC text), so reads stay uniform.
    return now.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else now


def _gone(campaign: Campaign, subscriber_id, email, sub_status, member) -> str | None:
    """Why a claimed recipient must not get this message any more (None: send it)."""
    if email is None:
        return "address was forgotten"
    if subscriber_id is None:
        # Test-send addresses have no subscriber; in a real send it was deleted (SET NULL).
        return "subscriber was removed" if campaign.kind is CampaignKind.SEND else None
    if sub_status is None:
        return "subscriber was removed"
    if sub_status != Status.SUBSCRIBED.value:
        return f"subscriber is {sub_status}"
    if campaign.list_id is not None and not member:
        return "subscriber left the list"
    return None
