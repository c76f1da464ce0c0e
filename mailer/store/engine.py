"""Engine setup: one place that knows the dialect quirks.

SQLite runs in WAL mode with a busy timeout so the web app and a send can use
the same file at once; transactions are begun explicitly (pysqlite's implicit
BEGIN is disabled) so writers can take the lock up front with BEGIN IMMEDIATE
instead of failing with SQLITE_BUSY when a read upgrades to a write.
PostgreSQL URLs are pinned to psycopg 3.
"""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mailer.config import mask
from mailer.errors import StoreError

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10  # PostgreSQL
# PostgreSQL connections are replaced after this many seconds instead of being
# pinged on every checkout (a pre-ping is one more round trip per transaction).
# Under typical server/proxy idle timeouts, so a pooled connection is rarely found
# dead; if one is, SQLAlchemy invalidates the pool and that one request fails (503).
POOL_RECYCLE_S = 300
# >= the web app's concurrent database calls (mailer/web/context.py DB_THREADS); also the most
# connections loopwriter.py opens for the one-click write, beside these, per web process.
POOL_SIZE = 10


def sqlite_busy(exc: Exception) -> bool:
    """Is ``exc`` sqlite3's SQLITE_BUSY ("database is locked"), or one of its extended codes?"""
    import sqlite3

    return isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def _wal(cur) -> None:
    """``PRAGMA journal_mode=WAL``, waiting (up to the busy timeout) while another connection writes.

    A new file starts in rollback-journal mode, and switching it to WAL needs an exclusive
    lock: while another connection holds the write lock, SQLite answers "database is locked"
    at once instead of calling the busy handler (its rule against deadlocks). The web app and
    a CLI command first opening one new file failed that way now and then.
    """
    deadline, pause = time.monotonic() + BUSY_TIMEOUT_MS / 1000, 0.001
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:
            if not sqlite_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands timestamps back naive; they are always stored as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def normalize_url(url: str) -> sa.URL:
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise StoreError(mask(f"invalid database.url {url!r}: {exc}")) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):  # postgres:// is what many hosts hand out
        return parsed.set(drivername="postgresql+psycopg")
    if backend != "sqlite":
        raise StoreError(f"unsupported database.url {mask(url)!r}: use sqlite:///FILE or postgresql://...")
    return parsed


def create_engine(url: str) -> sa.Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, pool_recycle=POOL_RECYCLE_S, pool_size=POOL_SIZE, max_overflow=10,
                            connect_args=pg_connect_args(parsed))


def pg_connect_args(url: sa.URL) -> dict:
    """Driver arguments beyond the URL's, for every PostgreSQL connection (the engine's and loopwriter's)."""
    # libpq waits forever for a server that accepts but never answers (a hung host, a wrong
    # port forward): give up after CONNECT_TIMEOUT_S unless the URL says otherwise.
    return {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    database = url.database or ""
    if database and database != ":memory:":
        from pathlib import Path

        folder = Path(database).parent
        if not folder.is_dir():
            raise StoreError(f"database folder does not exist: {folder}")
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        _wal(cur)
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten content is zeroed, not left in free space: `forget` must
        # leave no address in the file.
        cur.execute("PRAGMA secure_delete=ON")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; WAL keeps it consistent
        # 32 MB page cache (default 2 MB): the address indexes are random-keyed (HMAC), so big
        # imports touch pages all over them; measured ~1.5x faster at 400k rows.
        cur.execute("PRAGMA cache_size=-32768")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine
