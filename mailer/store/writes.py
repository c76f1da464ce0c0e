"""Status changes: every one is appended to `history`; suppression is permanent.

An address that unsubscribed, bounced or complained is never turned back to
pending/subscribed by an import or a plain `add`: only an explicit
re-subscription (``resubscribe=True`` / ``allow_resubscribe=True``) does that,
and it is logged like any other change.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from mailer.errors import StoreConflict, SubscriberError
from mailer.models import Status, Subscriber
from mailer.store.addresses import control_character, normalize, spellings, undeliverable
from mailer.store.core import StoreBase, to_subscriber
from mailer.store.engine import utcnow
from mailer.store.feedback import FeedbackOps
from mailer.store.ledger import LedgerOps
from mailer.store.ratelimit import RateLimitOps
from mailer.store.reports import ReportOps
from mailer.store.schema import deliveries, feedback_events, history, list_members, subscribers as S

REASON_MAX = 32
NAME_MAX = 200  # schema: subscribers.name
# Statuses that still get mail, the common one first (suppress tries them in order).
RECEIVING = sorted((s for s in Status if not s.suppressed), key=lambda s: s != Status.SUBSCRIBED)
# The one-click statements, shared with loopwriter.py. Built once: on the one-click path,
# building them per call (and SQLAlchemy deriving their cache keys) cost more than running
# them (profiled under bench/web.py). Parameters: sid, old, new, at (+ reason, detail).
SUPPRESS = (S.update().where(S.c.id == sa.bindparam("sid"), S.c.status == sa.bindparam("old"),
                             S.c.email.is_not(None))
            .values(status=sa.bindparam("new"), updated_at=sa.bindparam("at")).returning(S.c.id))
HISTORY = history.insert()
HISTORY_COLUMNS = ["subscriber_id", "at", "old_status", "new_status", "reason", "detail"]  # history_row's keys
# PostgreSQL: the same UPDATE as a data-modifying CTE feeding the history INSERT, one atomic statement.
_CHANGED = SUPPRESS.cte("changed")
PG_SUPPRESS = history.insert().from_select(
    HISTORY_COLUMNS,
    sa.select(_CHANGED.c.id, sa.bindparam("at"), sa.bindparam("old"), sa.bindparam("new"),
              sa.bindparam("reason"), sa.bindparam("detail")),
).returning(history.c.subscriber_id)


def target_status(old: Status, new: Status, resubscribe: bool = False) -> Status | None:
    """What an add/import of ``new`` does to an existing ``old`` status (None: keep it)."""
    if old == new:
        return None
    if old.suppressed:
        # Suppressed stays suppressed (and keeps its first reason) unless explicitly resubscribed.
        return new if resubscribe and not new.suppressed else None
    if new.suppressed:
        return new  # leaving always wins
    if old == Status.SUBSCRIBED:
        return None  # never demote a confirmed subscriber to pending
    return new


@dataclass(frozen=True)
class Update:
    """What an add or import does to a row that already exists (the fields None: keep them)."""

    status: Status | None = None
    name: str | None = None
    revive: bool = False  # a forgotten row takes its address back (explicit re-subscription only)
    untouched: bool = False  # forgotten and staying so: no change, not even list membership


def update_for(row, status: Status, name: str | None, *, resubscribe: bool = False,
               overwrite_name: bool) -> Update:
    """The one rule for an existing ``row`` (status, name, forgotten_at) seen again with ``status``/``name``.

    Suppression: ``target_status``; a forgotten address stays forgotten unless ``resubscribe``.
    Names: ``add`` says who the reader is now (``overwrite_name``); an import only fills a missing
    one, since an old export must not undo a correction made since.
    """
    if row.forgotten_at is not None:
        if not resubscribe:
            return Update(untouched=True)
        return Update(status=target_status(Status(row.status), status, True), name=name, revive=True)
    target = target_status(Status(row.status), status, resubscribe)
    if overwrite_name:
        name = name if name and name != row.name else None
    else:
        name = name if name and not row.name else None
    return Update(status=target, name=name)


def _same_address(email: str, norm: str) -> bool:
    try:
        return normalize(email)[1] == norm
    except SubscriberError:
        return False


def check_reason(reason: str) -> str:
    if not reason or len(reason) > REASON_MAX:
        raise SubscriberError(f"reason must be 1 to {REASON_MAX} characters, got {reason!r}")
    return reason


def suppress_args(status: Status | str, reason: str) -> tuple[Status, str]:
    """The checked arguments of a suppress (Store.suppress, LoopWriter.suppress)."""
    status, reason = Status(status), check_reason(reason)
    if not status.suppressed:
        raise SubscriberError(f"suppress needs a suppressed status, got {status.value}")
    return status, reason


def suppress_attempts(subscriber_id: int, status: Status, now) -> Iterator[tuple[Status, dict]]:
    """The conditional UPDATEs of a suppress (Store.suppress, LoopWriter.suppress), most likely
    first (usually the first matches): the status each moves from, and SUPPRESS's parameters
    (PG_SUPPRESS's too, with reason and detail)."""
    for old in RECEIVING:
        yield old, {"sid": subscriber_id, "old": old.value, "new": status.value, "at": now}


def history_row(subscriber_id: int, old: Status | str | None, new: Status | str, reason: str,
                detail: str | None, at) -> dict:
    return {"subscriber_id": subscriber_id, "at": at, "old_status": Status(old).value if old else None,
            "new_status": Status(new).value, "reason": reason, "detail": detail}


class Store(LedgerOps, FeedbackOps, RateLimitOps, ReportOps, StoreBase):
    """Every table access of twir-mail: subscribers here, campaigns (LedgerOps), SES feedback
    (FeedbackOps), rate-limit counters (RateLimitOps) and read-only figures (ReportOps) in their own modules."""

    def _find(self, conn: sa.Connection, norm: str, digest: str):
        """The row of an address: by its address, or by its hash under the current or an older key."""
        digests = [digest, *(d for d in self.email_hashes(norm) if d != digest)]
        query = sa.select(S).where(sa.or_(S.c.email_hash.in_(digests), S.c.email_norm == norm))
        return conn.execute(query.with_for_update()).first()

    def _join(self, conn: sa.Connection, list_id: int, subscriber_id: int, at) -> None:
        conn.execute(self._insert(list_members).values(list_id=list_id, subscriber_id=subscriber_id, added_at=at)
                     .on_conflict_do_nothing())

    def join_list(self, list_id: int, subscriber_id: int) -> bool:
        """Make a subscriber a member of a list (already one is fine); False if the list is gone."""
        try:
            with self._write() as conn:
                self._join(conn, list_id, subscriber_id, utcnow())
        except StoreConflict:
            return False
        return True

    def add(self, email: str, *, list_name: str = "main", name: str | None = None, source: str = "cli",
            status: Status = Status.SUBSCRIBED, resubscribe: bool = False, reason: str = "cli",
            detail: str | None = None) -> Subscriber:
        """Add or update an address; a suppressed or forgotten one stays so unless ``resubscribe``."""
        display, norm = normalize(email)
        why = undeliverable(display)
        if why:
            raise SubscriberError(f"cannot add {display}: {why}", address=display)
        digest, status, reason = self.email_hash(norm), Status(status), check_reason(reason)
        name = (name or "").strip() or None
        if control_character(name):
            raise SubscriberError(f"name has a control character ({control_character(name)})", address=display)
        if name and len(name) > NAME_MAX:
            raise SubscriberError(f"name longer than {NAME_MAX} characters", address=display)
        for _ in range(3):  # PostgreSQL: a concurrent insert of the same address means: look again
            with self._write() as conn:
                list_id, now = self.list_id(list_name, conn), utcnow()
                row = self._find(conn, norm, digest)
                if row is None:
                    new_id = conn.execute(self._insert(S).values(
                        email=display, email_norm=norm, email_hash=digest, name=name, status=status.value,
                        source=source, created_at=now, updated_at=now,
                    ).on_conflict_do_nothing().returning(S.c.id)).scalar()
                    if new_id is None:
                        continue
                    conn.execute(history.insert().values(history_row(new_id, None, status, reason, detail, now)))
                    self._join(conn, list_id, new_id, now)
                    sid = new_id
                else:
                    sid = self._update_existing(conn, row, display, norm, digest, name, status,
                                                resubscribe, reason, detail, list_id, now)
                return to_subscriber(conn.execute(sa.select(S).where(S.c.id == sid)).one())
        raise SubscriberError(f"could not add {display}: it keeps changing concurrently", address=display)

    def _update_existing(self, conn, row, display, norm, digest, name, status, resubscribe, reason, detail,
                         list_id, now) -> int:
        update = update_for(row, status, name, resubscribe=resubscribe, overwrite_name=True)
        if update.untouched:
            return row.id  # erased: stays suppressed and we do not store the address again
        values: dict = {}
        if update.revive:
            values.update(email=display, email_norm=norm, name=update.name, forgotten_at=None)
        elif update.name is not None:
            values["name"] = update.name
        if row.email_hash != digest:  # the secret key changed since this row was written
            values["email_hash"] = digest
        if update.status is not None:
            values["status"] = update.status.value
            conn.execute(history.insert().values(history_row(row.id, row.status, update.status, reason, detail, now)))
        if values:
            conn.execute(S.update().where(S.c.id == row.id).values(updated_at=now, **values))
        self._join(conn, list_id, row.id, now)
        return row.id

    def set_status(self, subscriber_id: int, status: Status | str, *, reason: str, detail: str | None = None,
                   allow_resubscribe: bool = False, conn: sa.Connection | None = None) -> bool:
        """Change one subscriber's status (row-locked); False if it already had it."""
        status, reason = Status(status), check_reason(reason)
        with self._using(conn) as conn:
            row = conn.execute(sa.select(S.c.status, S.c.email, S.c.forgotten_at)
                               .where(S.c.id == subscriber_id).with_for_update()).first()
            if row is None:
                raise SubscriberError(f"no subscriber with id {subscriber_id}")
            old = Status(row.status)
            if old == status:
                return False
            who = row.email or f"subscriber #{subscriber_id}"
            if old.suppressed and not status.suppressed:
                if not allow_resubscribe:
                    raise SubscriberError(f"{who} is {old.value}: only an explicit re-subscription can change that",
                                          address=row.email)
                if row.forgotten_at is not None:
                    raise SubscriberError(f"{who} was forgotten: add the address again with resubscribe")
            now = utcnow()
            conn.execute(S.update().where(S.c.id == subscriber_id).values(status=status.value, updated_at=now))
            conn.execute(history.insert().values(history_row(subscriber_id, old, status, reason, detail, now)))
            return True

    def suppress(self, subscriber_id: int, status: Status | str, *, reason: str, detail: str | None = None) -> bool:
        """Move a subscriber that still gets mail to a suppressed status; False if it no longer did.

        The one-click unsubscribe path. In the usual case one conditional UPDATE plus the
        history insert: on SQLite in one transaction, on PostgreSQL as one statement (the
        UPDATE in a CTE) committed on its own, a single round trip. The UPDATE's WHERE is
        the check, so two concurrent clicks log one change (the second finds nothing).
        """
        status, reason = suppress_args(status, reason)
        now = utcnow()
        attempts = suppress_attempts(subscriber_id, status, now)
        if self.dialect == "postgresql":  # UPDATE and INSERT in one statement: one round trip
            with self._autocommit() as conn:
                return any(conn.execute(PG_SUPPRESS, {**params, "reason": reason, "detail": detail}).first()
                           for _, params in attempts)
        with self._write() as conn:
            for old, params in attempts:
                if conn.execute(SUPPRESS, params).first() is not None:
                    conn.execute(HISTORY, history_row(subscriber_id, old, status, reason, detail, now))
                    return True
        return False

    def rehash(self, page: int = 2000) -> tuple[int, int]:
        """Re-key every known address's hash to the current address key, a page per transaction.

        Returns (rows re-keyed, forgotten rows): a forgotten address is not stored, so its
        hash stays under the key it was written with (matched while that key is configured).
        """
        changed, last = 0, 0
        while True:
            with self._write() as conn:
                rows = conn.execute(sa.select(S.c.id, S.c.email_norm, S.c.email_hash).where(
                    S.c.id > last, S.c.email_norm.is_not(None)).order_by(S.c.id).limit(page)).all()
                updates = [{"b_id": r.id, "b_hash": h} for r in rows
                           if (h := self.email_hash(r.email_norm)) != r.email_hash]
                if updates:
                    conn.execute(S.update().where(S.c.id == sa.bindparam("b_id"))
                                 .values(email_hash=sa.bindparam("b_hash")), updates)
            changed += len(updates)
            if len(rows) < page:
                break
            last = rows[-1].id
        with self._read() as conn:
            forgotten = conn.execute(sa.select(sa.func.count()).select_from(S)
                                     .where(S.c.forgotten_at.is_not(None))).scalar_one()
        return changed, forgotten

    def forget(self, email: str) -> bool:
        """Erase an address's personal data; a keyed hash keeps it suppressed. False if unknown."""
        _, norm = normalize(email)
        with self._write() as conn:
            row = self._find(conn, norm, self.email_hash(norm))
            if row is None or row.forgotten_at is not None:
                return False
            now, sid = utcnow(), row.id
            if not Status(row.status).suppressed:
                conn.execute(history.insert().values(
                    history_row(sid, row.status, Status.UNSUBSCRIBED, "forget", None, now)))
            conn.execute(S.update().where(S.c.id == sid).values(
                email=None, email_norm=None, name=None, forgotten_at=now, updated_at=now,
                status=Status.UNSUBSCRIBED.value if not Status(row.status).suppressed else row.status))
            # Free-text details (bounce diagnostics, reasons) may quote the address.
            conn.execute(history.update().where(history.c.subscriber_id == sid).values(detail=None))
            conn.execute(feedback_events.update().where(feedback_events.c.subscriber_id == sid).values(detail=None))
            # A delivery's error is the server's text, which often quotes the address (550 <x@y>: ...).
            conn.execute(deliveries.update().where(deliveries.c.subscriber_id == sid).values(email=None, error=None))
            self._erase_unlinked(conn, norm, row.email)
            conn.execute(list_members.delete().where(list_members.c.subscriber_id == sid))
        self.scrub_files()
        return True

    def _erase_unlinked(self, conn: sa.Connection, norm: str, typed: str) -> None:
        """Rows that quote the address without a subscriber id: test sends (`send --to ADDR`,
        typed in any spelling, so matched on the normalized address) and SES feedback for
        addresses that were never (or no longer) subscribers (their detail text)."""
        tests = conn.execute(sa.select(deliveries.c.id, deliveries.c.email).where(
            deliveries.c.subscriber_id.is_(None), deliveries.c.email.is_not(None))).all()
        ids = [r.id for r in tests if _same_address(r.email, norm)]
        for chunk in range(0, len(ids), 500):
            conn.execute(deliveries.update().where(deliveries.c.id.in_(ids[chunk:chunk + 500]))
                         .values(email=None, error=None))
        quoted = sa.or_(*(sa.func.lower(feedback_events.c.detail).contains(spelling, autoescape=True)
                          for spelling in spellings(norm, typed)))
        conn.execute(feedback_events.update().where(feedback_events.c.subscriber_id.is_(None), quoted)
                     .values(detail=None))
