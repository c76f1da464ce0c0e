"""Bulk import: validated rows applied in batches, one transaction per batch.

A bad row is reported as ``file:line: reason`` and skipped. Each batch is
all-or-nothing, so a crash never leaves half a batch; importing the same file
again changes nothing, so an interrupted import is simply run again. The rule
for an address already stored is ``Store.add``'s own (``writes.update_for``): an
import never turns an address that left back to subscribed, a forgotten address
stays forgotten, and a name is filled in only where none is stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import sqlalchemy as sa

from mailer.errors import SubscriberError
from mailer.models import Status
from mailer.store.addresses import control_character, normalize, undeliverable
from mailer.store.engine import utcnow
from mailer.store.schema import history, list_members, subscribers as S
from mailer.store.sources import Row, detect_format, read_rows
from mailer.store.writes import NAME_MAX, Store, history_row, update_for

BATCH = 2000  # rows per transaction: fewer commits, still a short write lock (~0.1 s)
MAX_MESSAGES = 1000  # bad-row messages kept in the report (all are passed to on_bad)


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    changed: int = 0  # existing subscribers whose status changed (e.g. now unsubscribed)
    unchanged: int = 0
    kept_suppressed: int = 0  # rows asking to subscribe an address that left: not resubscribed
    bad: int = 0
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.rows} rows: {self.added} added, {self.changed} changed, {self.unchanged} unchanged, "
                f"{self.kept_suppressed} kept suppressed, {self.bad} skipped")


@dataclass
class _Item:
    display: str
    norm: str
    digest: str
    name: str | None
    status: Status
    detail: str | None
    source: str | None = None
    created_at: dt.datetime | None = None
    older: tuple[str, ...] = ()  # hashes of the address under older keys (forgotten rows keep those)


def import_file(store: Store, path: str | Path, *, list_name: str = "main", fmt: str | None = None,
                source: str | None = None, on_bad: Callable[[str], None] | None = None,
                batch_size: int = BATCH) -> ImportReport:
    """Import a plain CSV or a Mailchimp export (zip or CSV) into ``list_name``."""
    path = Path(path)
    if fmt is None and path.is_file():
        fmt = detect_format(path)
    rows = read_rows(path, fmt)
    return import_rows(store, rows, list_name=list_name, on_bad=on_bad, batch_size=batch_size,
                       source=source or ("mailchimp" if fmt == "mailchimp" else "import"))


def import_rows(store: Store, rows: Iterable[Row], *, list_name: str = "main", source: str = "import",
                on_bad: Callable[[str], None] | None = None, batch_size: int = BATCH) -> ImportReport:
    report, list_id = ImportReport(), store.list_id(list_name)

    def bad(row: Row, reason: str) -> None:
        report.bad += 1
        message = f"{row.where}: {reason}"
        if len(report.messages) < MAX_MESSAGES:
            report.messages.append(message)
        if on_bad:
            on_bad(message)

    layers: list[dict[str, _Item]] = []  # a repeated address goes to the next layer, applied after
    batches = 0

    for row in rows:
        report.rows += 1
        item = _validate(store, row, bad)
        if item is None:
            continue
        if layers and sum(map(len, layers)) >= batch_size:
            batches = _flush(store, layers, list_id, source, report, batches)
        layer = next((one for one in layers if item.digest not in one), None)
        if layer is None:
            layers.append(layer := {})
        layer[item.digest] = item
    if layers:
        _flush(store, layers, list_id, source, report, batches)
    return report


def _flush(store: Store, layers: list[dict[str, _Item]], list_id: int, source: str, report: ImportReport,
           batches: int) -> int:
    """Apply one batch in one transaction. Repeats of an address (``Reader@x``, then ``reader@x``)
    sit in later layers, applied in file order after the first, without ending the batch early:
    a messy file keeps full-size batches (a repeat used to commit the batch, ~250 rows a time)."""
    with store._write() as conn:
        for layer in layers:
            _apply(store, conn, list(layer.values()), list_id, source, report)
    layers.clear()
    batches += 1
    if batches & (batches - 1) == 0:  # after batches 1, 2, 4, 8...: while the table grows fastest
        store.refresh_statistics()
    return batches


def _validate(store: Store, row: Row, bad) -> _Item | None:
    if not row.email:
        bad(row, "no address")
        return None
    if row.status is None:
        bad(row, f"unknown status {row.bad_status!r}")
        return None
    for column, value in (("email", row.email), ("name", row.name), ("source", row.source),
                          ("detail", row.detail), ("created_at", row.created_at)):
        if control_character(value):
            bad(row, f"control character {control_character(value)} in the {column} column")
            return None
    try:
        display, norm = normalize(row.email)
    except SubscriberError as exc:
        bad(row, exc.message)
        return None
    if undeliverable(display):
        bad(row, f"{display}: {undeliverable(display)}")
        return None
    name = row.name[:NAME_MAX] if row.name else None  # long Mailchimp names are cut, not rejected
    created = None
    if row.created_at:  # an export's own dates come back with it (a move from SQLite to PostgreSQL)
        try:
            created = dt.datetime.fromisoformat(row.created_at)
        except ValueError:
            bad(row, f"created_at is not an ISO 8601 date: {row.created_at!r}")
            return None
        created = created if created.tzinfo else created.replace(tzinfo=dt.timezone.utc)
    digest, *older = store.email_hashes(norm)
    return _Item(display, norm, digest, name, row.status, row.detail, row.source, created, tuple(older))


def _apply(store: Store, conn: sa.Connection, items: list[_Item], list_id: int, source: str,
           report: ImportReport) -> None:
    """Distinct addresses: lock the rows that exist, insert the rest, log every change."""
    items.sort(key=lambda i: i.digest)  # same lock order in every writer (PostgreSQL deadlocks)
    now = utcnow()
    found = _lock_existing(store, conn, items, list_id)
    new = [i for i in items if _match(found, i) is None]
    inserted = _insert_new(store, conn, new, source, now)
    if len(inserted) < len(new):  # another writer inserted some meanwhile (PostgreSQL): lock those too
        found.update(_lock_existing(store, conn, [i for i in new if i.digest not in inserted], list_id))
    report.added += len(inserted)
    hist = [history_row(sid, None, i.status, "import", i.detail, now)
            for i in new if (sid := inserted.get(i.digest))]
    old = [i for i in items if i.digest not in inserted]
    members = list(inserted.values()) + _update_existing(conn, old, found, now, hist, report)
    if hist:
        _bulk_insert(store, conn, history, hist)
    if members:
        _bulk_insert(store, conn, list_members, [{"list_id": list_id, "subscriber_id": sid, "added_at": now}
                                                 for sid in members], ignore_conflicts=True)


def _bulk_insert(store: Store, conn: sa.Connection, table: sa.Table, rows: list[dict], *,
                 returning: tuple = (), ignore_conflicts: bool = False) -> sa.CursorResult:
    """INSERT ``rows`` (dicts with the same keys), optionally ON CONFLICT DO NOTHING / RETURNING.

    PostgreSQL: one statement selecting from ``unnest()`` of one array per column, so its text is
    the same for every batch. SQLAlchemy's multi-row VALUES had 8 placeholders per row (16,000 a
    batch) in a text psycopg parsed anew each time: a third of a PostgreSQL import's time.
    SQLite: executemany (multi-row VALUES there, where parsing is cheap)."""
    query = store._insert(table)
    if store.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        cols = list(rows[0])
        arrays = [sa.bindparam(f"a_{c}", [r[c] for r in rows], type_=ARRAY(_element(table.c[c].type)))
                  for c in cols]
        source = sa.func.unnest(*arrays).table_valued(*cols).render_derived()
        query = query.from_select(cols, sa.select(*(source.c[c] for c in cols)))
    if ignore_conflicts:
        query = query.on_conflict_do_nothing()
    if returning:
        query = query.returning(*returning)
    return conn.execute(query) if store.dialect == "postgresql" else conn.execute(query, rows)


def _element(column_type):
    # text[], not varchar(n)[]: an explicit cast to varchar(n) truncates silently, while inserting
    # text into a varchar(n) column refuses an over-long value, as the plain INSERT did.
    return sa.Text() if isinstance(column_type, sa.String) else column_type


def _in(store: Store, column: sa.Column, values: list):
    """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, the same text for
    every batch (an IN list expands to a placeholder per value, parsed anew each batch)."""
    if store.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(_element(column.type))))
    return column.in_(values)


def _match(found: dict, item: _Item):
    return next((found[k] for k in (item.digest, item.norm, *item.older) if k in found), None)


@dataclass
class _Existing:
    id: int
    email_hash: str
    email_norm: str | None
    status: str
    name: str | None
    forgotten_at: dt.datetime | None
    on_list: bool = False


def _lock_existing(store: Store, conn: sa.Connection, items: list[_Item], list_id: int) -> dict:
    """Existing rows for these items (by hash under any key, or by address), row-locked;
    hash/norm -> row.

    Plan-stable on purpose: one indexed IN list per query (an OR of two IN lists plus an
    EXISTS on list_members made PostgreSQL scan both tables on every batch: super-linear).
    """
    if not items:
        return {}
    cols = (S.c.id, S.c.email_hash, S.c.email_norm, S.c.status, S.c.name, S.c.forgotten_at)
    hashes = [h for i in items for h in (i.digest, *i.older)]
    rows = {r.id: _Existing(*r) for r in conn.execute(
        sa.select(*cols).where(_in(store, S.c.email_hash, hashes)).with_for_update())}
    rows.update((r.id, _Existing(*r)) for r in conn.execute(
        sa.select(*cols).where(_in(store, S.c.email_norm, [i.norm for i in items])).with_for_update())
        if r.id not in rows)
    if rows:
        on_list = set(conn.execute(sa.select(list_members.c.subscriber_id).where(
            list_members.c.list_id == list_id, _in(store, list_members.c.subscriber_id, list(rows)))).scalars())
    found = {}
    for row in rows.values():
        row.on_list = row.id in on_list
        found[row.email_hash] = row
        if row.email_norm:
            found[row.email_norm] = row
    return found


def _insert_new(store: Store, conn: sa.Connection, items: list[_Item], source: str, now) -> dict[str, int]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING; returns digest -> id of the new rows."""
    if not items:
        return {}
    values = [{"email": i.display, "email_norm": i.norm, "email_hash": i.digest, "name": i.name,
               "status": i.status.value, "source": i.source or source, "created_at": i.created_at or now,
               "updated_at": now} for i in items]
    result = _bulk_insert(store, conn, S, values, returning=(S.c.id, S.c.email_hash), ignore_conflicts=True)
    return {digest: sid for sid, digest in result}


def _update_existing(conn: sa.Connection, items: list[_Item], found: dict, now, hist: list[dict],
                     report: ImportReport) -> list[int]:
    """Apply the suppression rule to rows that already exist; returns ids still to put on the list."""
    updates, members = [], []
    for item in items:
        row = _match(found, item)
        if row is None:  # deleted meanwhile by another writer: nothing to update
            continue
        old = Status(row.status)
        update = update_for(row, item.status, item.name, overwrite_name=False)
        if update.status is not None or update.name is not None:
            updates.append({"b_id": row.id, "b_status": (update.status or old).value,
                            "b_name": update.name or row.name})
        if update.status is not None:
            hist.append(history_row(row.id, old, update.status, "import", item.detail, now))
            report.changed += 1
        elif old.suppressed and not item.status.suppressed:
            report.kept_suppressed += 1
        else:
            report.unchanged += 1
        if not update.untouched and not row.on_list:
            members.append(row.id)
    if updates:
        conn.execute(S.update().where(S.c.id == sa.bindparam("b_id")).values(
            status=sa.bindparam("b_status"), name=sa.bindparam("b_name"), updated_at=now), updates)
    return members
