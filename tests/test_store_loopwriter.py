"""LoopWriter: Store.suppress from an event loop (the one-click write), on SQLite and PostgreSQL.

Same results as Store.suppress; one statement (PostgreSQL) or one transaction (SQLite);
SQLite never waits for another writer's lock (None: the caller waits in a thread);
PostgreSQL connections fail fast, recover from a killed one and are recycled.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailer.errors import StoreError, SubscriberError
from mailer.models import Status
from mailer.store import pgconnections
from mailer.store.loopwriter import LoopWriter

REASON = "unsubscribe-link"


def run(store, *calls):
    """Each call is (subscriber_id, status[, detail]); the writer's results, in order, from one event loop."""
    async def go():
        writer = LoopWriter(store)
        try:
            return [await writer.suppress(sid, status, reason=REASON, detail=detail[0] if detail else None)
                    for sid, status, *detail in calls]
        finally:
            await writer.close()
    return asyncio.run(go())


@pytest.mark.parametrize("start", [Status.SUBSCRIBED, Status.PENDING])
def test_moves_a_receiving_subscriber_once_as_the_store_does(store, start):
    sub = store.add("reader@example.com", status=start)
    assert run(store, (sub.id, Status.UNSUBSCRIBED, "list main"), (sub.id, Status.UNSUBSCRIBED)) == [True, False]
    got = store.get_by_id(sub.id)
    assert got.status is Status.UNSUBSCRIBED and got.updated_at > got.created_at  # readable by the store
    last = store.history(sub.id)[-1]
    assert (last.old_status, last.new_status, last.reason, last.detail) == (
        start, Status.UNSUBSCRIBED, REASON, "list main")
    assert last.at == got.updated_at and len(store.history(sub.id)) == 2


def test_keeps_a_stronger_mark_and_forgotten_rows(store):
    bounced = store.add("bounced@example.com")
    store.set_status(bounced.id, Status.BOUNCED, reason="ses-bounce")
    gone = store.add("gone@example.com")
    store.forget("gone@example.com")
    before = store.history(gone.id)
    assert run(store, (bounced.id, Status.UNSUBSCRIBED), (gone.id, Status.UNSUBSCRIBED),
               (10_000, Status.UNSUBSCRIBED)) == [False, False, False]
    assert store.get_by_id(bounced.id).status is Status.BOUNCED
    assert store.history(gone.id) == before


def test_refuses_a_receiving_status(store):
    sub = store.add("reader@example.com")
    with pytest.raises(SubscriberError, match="suppressed status"):
        run(store, (sub.id, Status.SUBSCRIBED))


def test_concurrent_clicks_log_one_change(store):
    sub = store.add("clicker@example.com")

    async def go():
        writer = LoopWriter(store)
        try:
            return await asyncio.gather(*(writer.suppress(sub.id, Status.UNSUBSCRIBED, reason=REASON)
                                          for _ in range(6)))
        finally:
            await writer.close()

    assert sorted(asyncio.run(go())) == [False] * 5 + [True]
    assert [h.new_status for h in store.history(sub.id)] == [Status.SUBSCRIBED, Status.UNSUBSCRIBED]


def test_one_statement_or_one_transaction(store):
    """PostgreSQL: one statement per try, in autocommit (no BEGIN, COMMIT, SET or ping).
    SQLite: BEGIN IMMEDIATE, the UPDATE, the history INSERT, COMMIT."""
    sub, other = store.add("reader@example.com"), store.add("other@example.com")

    async def go():
        writer = LoopWriter(store)
        try:
            await writer.suppress(other.id, Status.UNSUBSCRIBED, reason=REASON)  # a connection to watch
            if store.dialect == "sqlite":
                seen = []
                writer._sqlite.dbapi_connection.set_trace_callback(seen.append)
                await writer.suppress(sub.id, Status.UNSUBSCRIBED, reason=REASON)
                return [s.split(None, 2)[:2] if s.startswith("BEGIN") else s.split(None, 1)[:1] for s in seen]
            conn = writer._conns._idle[0][1]
            with tempfile.NamedTemporaryFile("r") as trace:
                fd = os.open(trace.name, os.O_WRONLY)
                conn.pgconn.trace(fd)
                try:
                    await writer.suppress(sub.id, Status.UNSUBSCRIBED, reason=REASON)
                finally:
                    conn.pgconn.untrace()
                    os.close(fd)
                sent = [line.split("\t")[3].split()[0] for line in Path(trace.name).read_text().splitlines()
                        if line.split("\t")[1:2] == ["F"]]
            return [m for m in sent if m in ("Query", "Execute", "Sync")]
        finally:
            await writer.close()

    if store.dialect == "sqlite":
        assert asyncio.run(go()) == [["BEGIN", "IMMEDIATE"], ["UPDATE"], ["INSERT"], ["COMMIT"]]
    else:
        assert asyncio.run(go()) == ["Execute", "Sync"]  # one statement, one round trip
    assert store.get_by_id(sub.id).status is Status.UNSUBSCRIBED


def test_sqlite_never_waits_for_another_writers_lock(store):
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL row locks: the UPDATE waits for the other transaction, as Store.suppress does")
    sub = store.add("reader@example.com")
    with store.transaction() as conn:  # BEGIN IMMEDIATE: holds the write lock
        conn.execute(sa.text("SELECT 1"))
        started = time.monotonic()
        assert run(store, (sub.id, Status.UNSUBSCRIBED)) == [None]
        assert time.monotonic() - started < 10  # not the 30 s busy timeout
    assert store.get_by_id(sub.id).status is Status.SUBSCRIBED  # nothing written
    assert run(store, (sub.id, Status.UNSUBSCRIBED)) == [True]
    # Its connection's busy timeout is its own: the engine's pool still waits for locks.
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def pg_only(store):
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL connections only")


def test_postgresql_recovers_from_a_killed_connection(store):
    pg_only(store)
    subs = [store.add(f"r{i}@example.com") for i in range(3)]

    async def go():
        writer = LoopWriter(store)
        try:
            assert await writer.suppress(subs[0].id, Status.UNSUBSCRIBED, reason=REASON)
            pid = writer._conns._idle[0][1].info.backend_pid
            with store.engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            with pytest.raises(StoreError, match="database error"):  # the idle connection was dead...
                await writer.suppress(subs[1].id, Status.UNSUBSCRIBED, reason=REASON)
            assert await writer.suppress(subs[1].id, Status.UNSUBSCRIBED, reason=REASON)  # ...and is gone
            assert writer._conns._idle[0][1].info.backend_pid != pid
        finally:
            await writer.close()

    asyncio.run(go())
    assert [store.get_by_id(s.id).status for s in subs] == [Status.UNSUBSCRIBED] * 2 + [Status.SUBSCRIBED]


def test_postgresql_replaces_connections_after_the_recycle_time(store, monkeypatch):
    pg_only(store)
    a, b = store.add("a@example.com"), store.add("b@example.com")

    async def go():
        writer = LoopWriter(store)
        try:
            await writer.suppress(a.id, Status.UNSUBSCRIBED, reason=REASON)
            first = writer._conns._idle[0][1]
            monkeypatch.setattr(pgconnections, "POOL_RECYCLE_S", 0)
            await writer.suppress(b.id, Status.UNSUBSCRIBED, reason=REASON)
            return first.closed, writer._conns._idle[0][1] is first
        finally:
            await writer.close()

    assert asyncio.run(go()) == (True, False)


def test_postgresql_down_fails_at_once(store):
    pg_only(store)

    class Unreachable:  # what LoopWriter reads of a store: its engine (never connected here), its URL
        engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nothing")

        def _safe_url(self):
            return "postgresql://postgres@127.0.0.1:1/nothing"

    started = time.monotonic()
    with pytest.raises(StoreError, match=r"database error \(postgresql://postgres@127.0.0.1:1/nothing\)"):
        run(Unreachable(), (1, Status.UNSUBSCRIBED))
    assert time.monotonic() - started < 5  # no waiting for a pool to reconnect in the background
