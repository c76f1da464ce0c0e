"""The Store: connection handling, schema check and the read side of the subscriber list."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa

from mailer.config import Settings, mask
from mailer.errors import StoreConflict, StoreError, SubscriberError
from mailer.keys import AddressHasher
from mailer.models import HistoryEntry, Status, Subscriber
from mailer.store import migrate
from mailer.store.addresses import normalize
from mailer.store.engine import as_utc, create_engine
from mailer.store.schema import history, list_members, lists, subscribers as S

PAGE = 1000  # rows per keyset page when streaming


def db_error(exc: Exception, where: str = "") -> StoreError:
    """One line from a driver error (they span several lines and quote SQL), naming the
    database (``where``, its masked URL): an operator with several configs must see which
    file was locked or full."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    kind = StoreConflict if isinstance(exc, sa.exc.IntegrityError) else StoreError
    return kind(f"database error ({where}): {first}" if where else f"database error: {first}")


def to_subscriber(row) -> Subscriber:
    return Subscriber(id=row.id, email=row.email, email_norm=row.email_norm, name=row.name,
                      status=Status(row.status), source=row.source,
                      created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at))


def _status_value(status: Status | str) -> str:
    try:
        return Status(status).value
    except ValueError:
        raise SubscriberError(f"unknown status {status!r}: use one of "
                              f"{', '.join(s.value for s in Status)}") from None


class StoreBase:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = settings.database_url
        self.engine: sa.Engine = create_engine(self.url)
        self.dialect: str = self.engine.dialect.name
        self._hasher = AddressHasher(settings)

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def current_revision(self) -> str | None:
        try:
            return migrate.current_revision(self.engine)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"cannot open database {self._safe_url()}: {db_error(exc).message}") from None

    def upgrade(self) -> None:
        from alembic.util import CommandError

        try:
            migrate.upgrade(self.engine)
        except CommandError as exc:
            raise StoreError(f"cannot upgrade database {self._safe_url()}: {exc}") from None
        except sa.exc.DBAPIError as exc:
            raise db_error(exc, self._safe_url()) from None

    def ensure_schema(self, upgrade: bool | None) -> None:
        current, head = self.current_revision(), migrate.head_revision()
        if current == head:
            return
        if upgrade or (upgrade is None and self.dialect == "sqlite"):
            self.upgrade()
            return
        if current is not None and current not in migrate.known_revisions():
            raise StoreError(f"database is at revision {current}, newer than this twir-mail: upgrade twir-mail")
        raise StoreError("database is not up to date: run `twir-mail db upgrade`")

    def _safe_url(self) -> str:
        return mask(self.url)

    # -- transactions ------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool) -> Iterator[sa.Connection]:
        """A transaction; writers take SQLite's lock up front (BEGIN IMMEDIATE)."""
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except sa.exc.DBAPIError as exc:
            raise db_error(exc, self._safe_url()) from None

    def transaction(self, *, write: bool = True):
        """``with store.transaction() as conn:`` for other modules' tables (campaigns, deliveries...).

        Driver errors become one-line StoreErrors; ``write=True`` takes SQLite's write lock
        up front, so concurrent writers queue (busy timeout) instead of failing.
        """
        return self._tx(write)

    def _write(self):
        return self._tx(True)

    @contextmanager
    def _autocommit(self) -> Iterator[sa.Connection]:
        """A connection whose statements each commit on their own (PostgreSQL).

        For a write that is one statement: no BEGIN/COMMIT round trips around it.
        """
        try:
            with self.engine.connect() as conn:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.DBAPIError as exc:
            raise db_error(exc, self._safe_url()) from None

    @contextmanager
    def _using(self, conn: sa.Connection | None, write: bool = True) -> Iterator[sa.Connection]:
        """The caller's transaction (``conn``) if given, else a new one: lets a caller
        batch several store calls into one transaction (see ``transaction``)."""
        if conn is not None:
            yield conn
            return
        with self._tx(write) as own:
            yield own

    def _read(self):
        return self._tx(False)

    def _insert(self, table: sa.Table):
        """INSERT supporting ON CONFLICT on both dialects."""
        # The engine's own dialect module, loaded already: importing both at the top cost
        # every SQLite process the PostgreSQL dialect (20-40 ms of a cold start).
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def scrub_files(self) -> bool:
        """SQLite: after erasing, move the WAL into the database and truncate it, so a removed
        address is not left in the WAL file (deleted content itself is zeroed: secure_delete,
        set in engine.py). Works while `serve` holds idle connections; False if a reader was
        mid-transaction (the WAL is then cleared by the next checkpoint). PostgreSQL: True."""
        if self.dialect != "sqlite":
            return True
        with self.engine.connect() as conn:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()[0]
        return not busy

    def refresh_statistics(self) -> None:
        """PostgreSQL: ANALYZE the subscriber tables. A bulk import calls it as they grow: with
        autovacuum off (or in a fresh database's first minute) the planner would keep plans made
        for empty tables. SQLite plans these lookups from its indexes alone: nothing to do."""
        if self.dialect != "postgresql":
            return
        with self._write() as conn:
            conn.exec_driver_sql("ANALYZE subscribers")
            conn.exec_driver_sql("ANALYZE list_members")

    # -- identity ----------------------------------------------------------
    def email_hash(self, norm: str) -> str:
        """Keyed hash of a normalized address: survives `forget`, useless without the key."""
        return self._hasher.digest(norm)

    def email_hashes(self, norm: str) -> list[str]:
        """Every hash this address may be stored under (current key first, then older keys)."""
        return self._hasher.digests(norm)

    def list_id(self, name: str, conn: sa.Connection | None = None) -> int:
        query = sa.select(lists.c.id).where(lists.c.name == name)
        if conn is None:
            with self._read() as conn:
                found = conn.execute(query).scalar()
        else:
            found = conn.execute(query).scalar()
        if found is None:
            raise SubscriberError(f"unknown list {name!r}: lists are {', '.join(self.list_names())}")
        return found

    def list_title(self, list_id: int) -> tuple[str | None, str] | None:
        """(title, name) of a list, or None if there is no such list."""
        with self._read() as conn:
            row = conn.execute(sa.select(lists.c.title, lists.c.name).where(lists.c.id == list_id)).first()
        return (row.title, row.name) if row else None

    def list_names(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(sa.select(lists.c.name).order_by(lists.c.id)).scalars())

    # -- reads -------------------------------------------------------------
    def get(self, email: str, *, conn: sa.Connection | None = None) -> Subscriber | None:
        """The subscriber for an address (also a forgotten one, with email None)."""
        _, norm = normalize(email)
        with self._using(conn, write=False) as conn:
            row = conn.execute(sa.select(S).where(
                sa.or_(S.c.email_hash.in_(self.email_hashes(norm)), S.c.email_norm == norm))).first()
        return to_subscriber(row) if row else None

    def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        with self._read() as conn:
            row = conn.execute(sa.select(S).where(S.c.id == subscriber_id)).first()
        return to_subscriber(row) if row else None

    def history(self, subscriber_id: int) -> list[HistoryEntry]:
        query = sa.select(history).where(history.c.subscriber_id == subscriber_id).order_by(history.c.id)
        with self._read() as conn:
            return [HistoryEntry(at=as_utc(r.at), old_status=Status(r.old_status) if r.old_status else None,
                                 new_status=Status(r.new_status), reason=r.reason, detail=r.detail)
                    for r in conn.execute(query)]

    def lists_of(self, subscriber_id: int) -> list[str]:
        query = (sa.select(lists.c.name).join(list_members, list_members.c.list_id == lists.c.id)
                 .where(list_members.c.subscriber_id == subscriber_id).order_by(lists.c.name))
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def _filtered(self, query, list_name: str | None, status, conn: sa.Connection):
        query = query.where(S.c.email_norm.is_not(None))  # forgotten rows are not subscribers
        if list_name is not None:
            lid = self.list_id(list_name, conn)
            query = query.where(S.c.id.in_(sa.select(list_members.c.subscriber_id)
                                           .where(list_members.c.list_id == lid)))
        if status is not None:
            query = query.where(S.c.status == _status_value(status))
        return query

    def count(self, list_name: str | None = None) -> dict[str, int]:
        """Subscribers per status (every status present, zeros included)."""
        counts = {s.value: 0 for s in Status}
        with self._read() as conn:
            query = self._filtered(sa.select(S.c.status, sa.func.count()), list_name, None, conn)
            for status, n in conn.execute(query.group_by(S.c.status)):
                counts[status] = n
        return counts

    def forgotten_count(self) -> int:
        """Rows erased by `forget` (kept as a keyed hash so they stay suppressed; on no list)."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(S)
                                .where(S.c.email_norm.is_(None))).scalar_one()

    def iter_subscribers(self, list_name: str | None = None, status: Status | str | None = None
                         ) -> Iterator[Subscriber]:
        """Stream subscribers by id, a page per short transaction (no long-held cursor or lock)."""
        last = 0
        while True:
            with self._read() as conn:
                query = self._filtered(sa.select(S), list_name, status, conn)
                rows = conn.execute(query.where(S.c.id > last).order_by(S.c.id).limit(PAGE)).all()
            for row in rows:
                yield to_subscriber(row)
            if len(rows) < PAGE:
                return
            last = rows[-1].id
