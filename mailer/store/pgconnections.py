"""PostgreSQL connections for an asyncio event loop (loopwriter.py), pooled as the engine's are."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Awaitable, Callable

from mailer.store.engine import POOL_RECYCLE_S


class PgConnections:
    """psycopg asyncio connections for one event loop, at most ``size`` in use at once.

    Like SQLAlchemy's pool, not psycopg_pool: a request that finds no idle connection opens
    one itself, so a database that is down fails it at once with the real error (a 503) and
    the next request tries again. psycopg_pool reconnects in the background, with growing
    delays, while its clients wait up to a timeout: every request would hang that long and
    the service would come back late. As with the engine's pool, idle connections are taken
    oldest first and replaced after POOL_RECYCLE_S instead of pinged (a dead one fails one
    request), and one left broken or mid-statement (a cancelled request) is closed.
    """

    def __init__(self, connect: Callable[[], Awaitable], size: int):
        from psycopg.pq import TransactionStatus

        self._reusable = TransactionStatus.IDLE  # not broken, not in the middle of a statement
        self._connect = connect
        self._idle: collections.deque = collections.deque()  # (opened at, connection)
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self):
        async with self._slots:
            opened, conn = await self._take()
            try:
                yield conn
            finally:
                if conn.info.transaction_status == self._reusable and not self._closed:
                    self._idle.append((opened, conn))
                else:
                    await conn.close()

    async def _take(self):
        while self._idle:
            opened, conn = self._idle.popleft()
            if time.monotonic() - opened < POOL_RECYCLE_S:
                return opened, conn
            await conn.close()
        return time.monotonic(), await self._connect()

    async def close(self) -> None:
        """Close the idle connections now, those in use when they come back."""
        self._closed = True
        while self._idle:
            await self._idle.popleft()[1].close()
