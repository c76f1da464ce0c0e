"""Store.suppress for an asyncio event loop: the one-click write without a worker thread.

The web app runs the synchronous store in worker threads. On the one-click path that hop
cost more than the write itself: profiled under bench/web.py on PostgreSQL, a request took
~0.45 ms of worker-thread CPU and ~0.45 ms on the event loop (a bare Starlette request:
~0.06 ms in all), most of it SQLAlchemy's per-statement bookkeeping and the event loop and
ten threads handing the GIL and wake-ups back and forth. Here the same write runs on the
loop itself:

* PostgreSQL: the one statement of Store.suppress (the UPDATE in a CTE feeding the history
  INSERT) on psycopg's asyncio connections in autocommit; the loop serves other requests
  while the commit waits for the WAL flush.
* SQLite: the one transaction of Store.suppress (BEGIN IMMEDIATE, UPDATE, INSERT, COMMIT)
  on a connection of its own: microseconds of page-cache work (synchronous=NORMAL: no
  flush per commit). That connection never waits for the write lock: if another writer
  holds it, ``suppress`` returns None and the caller runs Store.suppress in a thread,
  which waits for the lock as before.

Statements are the store's (writes.py), compiled once by SQLAlchemy for the dialect and run
on the driver's connection with the dialect's bind processors applied (SQLite keeps
timestamps as text in SQLAlchemy's format), as SQLAlchemy's own execution would.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa

from mailer.models import Status
from mailer.store.core import db_error
from mailer.store.engine import POOL_SIZE, pg_connect_args, sqlite_busy, utcnow
from mailer.store.pgconnections import PgConnections
from mailer.store.writes import (HISTORY, HISTORY_COLUMNS, PG_SUPPRESS, SUPPRESS, history_row, suppress_args,
                                 suppress_attempts)


class Compiled:
    """A statement compiled once for one dialect, with its parameters put in the driver's form."""

    def __init__(self, statement, dialect: sa.Dialect, keys: list[str] | None = None):
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = compiled.string
        self._order = compiled.positiontup  # SQLite's "?" placeholders; None for psycopg's named ones
        self._process = {key: fn for key, bind in compiled.binds.items()
                         if (fn := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}

    def args(self, values: dict[str, Any]) -> dict[str, Any] | list[Any]:
        values = {k: self._process[k](v) if k in self._process else v for k, v in values.items()}
        return values if self._order is None else [values[k] for k in self._order]


class LoopWriter:
    """``await writer.suppress(...)``: Store.suppress from the event loop; ``await writer.close()``.

    Use it from one event loop only (PostgreSQL connections belong to the loop that opened them).
    """

    def __init__(self, store):
        self._engine: sa.Engine = store.engine
        self._where = store._safe_url()  # for its errors, as the store's own
        dialect = self._engine.dialect
        self.dialect: str = dialect.name
        if self.dialect == "postgresql":
            import psycopg  # here, not at import: SQLite deployments never load it

            self._psycopg = psycopg
            self._pg = Compiled(PG_SUPPRESS, dialect)
            self._conns = PgConnections(self._pg_connect, POOL_SIZE)
        else:
            self._update, self._insert = Compiled(SUPPRESS, dialect), Compiled(HISTORY, dialect, HISTORY_COLUMNS)
            self._sqlite: Any = None  # the pool's connection, detached: its busy timeout is ours

    async def suppress(self, subscriber_id: int, status: Status | str, *, reason: str,
                       detail: str | None = None) -> bool | None:
        """What Store.suppress does and returns; None on SQLite if another writer holds the lock."""
        status, reason = suppress_args(status, reason)
        if self.dialect == "postgresql":
            return await self._pg_suppress(subscriber_id, status, reason, detail)
        return self._sqlite_suppress(subscriber_id, status, reason, detail)

    async def close(self) -> None:
        if self.dialect == "postgresql":
            await self._conns.close()
        elif self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    # -- PostgreSQL ---------------------------------------------------------------------
    async def _pg_connect(self):
        # The engine's own translation of the URL (host, database, options=...), its timeout.
        _, params = self._engine.dialect.create_connect_args(self._engine.url)
        params.update(pg_connect_args(self._engine.url), autocommit=True)
        return await self._psycopg.AsyncConnection.connect(**params)

    async def _pg_suppress(self, subscriber_id: int, status: Status, reason: str, detail: str | None) -> bool:
        try:
            async with self._conns.connection() as conn:
                for _, params in suppress_attempts(subscriber_id, status, utcnow()):
                    cursor = await conn.execute(self._pg.sql, self._pg.args({**params, "reason": reason,
                                                                             "detail": detail}))
                    if await cursor.fetchone() is not None:
                        return True
                return False
        except self._psycopg.Error as exc:
            raise db_error(exc, self._where) from None

    # -- SQLite ---------------------------------------------------------------------------
    def _sqlite_suppress(self, subscriber_id: int, status: Status, reason: str, detail: str | None) -> bool | None:
        try:
            conn = self._sqlite_connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if sqlite_busy(exc):
                    return None  # another writer holds the lock: the caller waits for it in a thread
                raise
            try:
                now, changed = utcnow(), False
                for old, params in suppress_attempts(subscriber_id, status, now):
                    # fetchall: a RETURNING statement must run to its end before COMMIT.
                    if conn.execute(self._update.sql, self._update.args(params)).fetchall():
                        row = history_row(subscriber_id, old, status, reason, detail, now)
                        conn.execute(self._insert.sql, self._insert.args(row))
                        changed = True
                        break
                conn.execute("COMMIT")
                return changed
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise db_error(exc, self._where) from None

    def _sqlite_connection(self):
        if self._sqlite is None:
            try:
                fairy = self._engine.raw_connection()  # the engine's PRAGMAs (WAL, secure_delete, ...) applied
            except sa.exc.DBAPIError as exc:
                raise db_error(exc, self._where) from None
            fairy.detach()  # never handed back to the pool with our busy timeout; close() closes it
            fairy.dbapi_connection.execute("PRAGMA busy_timeout=0")
            self._sqlite = fairy
        return self._sqlite.dbapi_connection
