"""Few transactions where people wait: one-click unsubscribe and SES feedback.

Counted with SQLAlchemy's own engine events on SQLite and PostgreSQL (no timing).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailer.errors import StoreError, SubscriberError
from mailer.feedback import apply as applyfeedback
from mailer.feedback.events import parse_ses_events
from mailer.models import Status
from mailer.store.schema import feedback_events, sns_messages
from mailer.web import unsubscribe
from mailer.web.context import Services

DATA = Path(__file__).parent / "data" / "ses"


class Counts:
    def __init__(self):
        self.commits = 0
        self.statements: list[str] = []


@contextmanager
def counted(engine: sa.Engine):
    """Commits and SQL statements (our own BEGINs left out) run on ``engine`` meanwhile."""
    counts = Counts()

    def on_commit(_conn):
        counts.commits += 1

    def on_execute(_conn, _cursor, statement, *_args):
        if not statement.startswith("BEGIN"):
            counts.statements.append(statement.split(None, 1)[0].upper())

    sa.event.listen(engine, "commit", on_commit)
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield counts
    finally:
        sa.event.remove(engine, "commit", on_commit)
        sa.event.remove(engine, "before_cursor_execute", on_execute)


def rows(store, table):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table)).all()


# -- Store.suppress -------------------------------------------------------------
@pytest.mark.parametrize("start", [Status.SUBSCRIBED, Status.PENDING])
def test_suppress_moves_a_receiving_subscriber_once(store, start):
    sub = store.add("reader@example.com", status=start)
    assert store.suppress(sub.id, Status.UNSUBSCRIBED, reason="unsubscribe-link", detail="list 1")
    assert not store.suppress(sub.id, Status.UNSUBSCRIBED, reason="unsubscribe-link")
    assert store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    last = store.history(sub.id)[-1]
    assert (last.old_status, last.new_status, last.reason, last.detail) == (
        start, Status.UNSUBSCRIBED, "unsubscribe-link", "list 1")
    assert len(store.history(sub.id)) == 2


def test_suppress_keeps_a_stronger_mark_and_forgotten_rows(store):
    bounced = store.add("bounced@example.com")
    store.set_status(bounced.id, Status.BOUNCED, reason="ses-bounce")
    assert not store.suppress(bounced.id, Status.UNSUBSCRIBED, reason="unsubscribe-link")
    assert store.get_by_id(bounced.id).status is Status.BOUNCED
    gone = store.add("gone@example.com")
    store.forget("gone@example.com")
    before = store.history(gone.id)
    assert not store.suppress(gone.id, Status.UNSUBSCRIBED, reason="unsubscribe-link")
    assert store.history(gone.id) == before
    assert not store.suppress(10_000, Status.UNSUBSCRIBED, reason="unsubscribe-link")  # no such row


def test_suppress_refuses_a_receiving_status(store):
    sub = store.add("reader@example.com")
    with pytest.raises(SubscriberError, match="suppressed status"):
        store.suppress(sub.id, Status.SUBSCRIBED, reason="cli")


def test_concurrent_clicks_log_one_change(store):
    sub = store.add("clicker@example.com")
    results, start = [], threading.Barrier(6)

    def click():
        start.wait()
        results.append(store.suppress(sub.id, Status.UNSUBSCRIBED, reason="unsubscribe-link"))

    threads = [threading.Thread(target=click) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    assert [h.new_status for h in store.history(sub.id)] == [Status.SUBSCRIBED, Status.UNSUBSCRIBED]


# -- the one-click path ------------------------------------------------------------
def test_one_click_is_one_round_trip_or_one_transaction(store, db_settings):
    """PostgreSQL: one statement (UPDATE in a CTE feeding the history INSERT), no BEGIN/COMMIT.
    SQLite: one transaction of the UPDATE and the INSERT."""
    svc = Services(db_settings, store=store)
    sub = store.add("reader@example.com")
    main = store.list_id("main")
    svc.list_title(main)  # cached for the process after the first page
    with counted(store.engine) as counts:
        unsubscribe.do_unsubscribe(svc, sub.id, main)
    if store.dialect == "postgresql":
        assert (counts.commits, counts.statements) == (0, ["WITH"])
    else:
        assert (counts.commits, counts.statements) == (1, ["UPDATE", "INSERT"])
    assert store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    assert [h.new_status for h in store.history(sub.id)] == [Status.SUBSCRIBED, Status.UNSUBSCRIBED]
    with counted(store.engine) as counts:  # again: nothing left to change, nothing written
        unsubscribe.do_unsubscribe(svc, sub.id, main)
    assert counts.commits <= 1 and len(counts.statements) == 2  # one try per receiving status
    assert len(store.history(sub.id)) == 2


# -- SES feedback: one transaction per notification -----------------------------------
def events(name: str):
    return parse_ses_events((DATA / f"{name}.json").read_text())


def test_a_notification_is_one_transaction(store, db_settings):
    sub = store.add("gone@example.com")  # the address of bounce-identity.json
    with counted(store.engine) as counts:
        assert applyfeedback.apply_notification(store, db_settings, "sns-1", events("bounce-identity"))
    assert counts.commits == 1
    assert store.get_by_id(sub.id).status is Status.BOUNCED
    with counted(store.engine) as counts:  # a repeat: the claim alone, still one transaction
        assert not applyfeedback.apply_notification(store, db_settings, "sns-1", events("bounce-identity"))
    assert counts.commits <= 1 and counts.statements == ["INSERT"]


def test_a_failure_half_way_keeps_nothing_of_the_notification(store, db_settings):
    sub = store.add("gone@example.com")
    with store.engine.begin() as conn:  # set_status fails after the claim and the audit row were written
        conn.exec_driver_sql("ALTER TABLE history RENAME TO history_away")
    with pytest.raises(StoreError, match="database error"):
        applyfeedback.apply_notification(store, db_settings, "sns-1", events("bounce-identity"))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE history_away RENAME TO history")
    assert rows(store, sns_messages) == [] and rows(store, feedback_events) == []
    assert store.get_by_id(sub.id).status is Status.SUBSCRIBED
    assert applyfeedback.apply_notification(store, db_settings, "sns-1", events("bounce-identity"))
    assert len(rows(store, feedback_events)) == 2  # both recipients, as if nothing had failed
    assert store.get_by_id(sub.id).status is Status.BOUNCED


# -- the pool: no ping per checkout; on PostgreSQL a dead connection costs one request -----
def test_pool_does_not_ping_and_recovers_from_a_killed_connection(store):
    sub = store.add("reader@example.com")
    with counted(store.engine) as counts:
        store.get_by_id(sub.id)
    assert counts.statements == ["SELECT"]  # no "SELECT 1" before it
    if store.dialect != "postgresql":
        return  # a SQLite connection is a file handle: nothing can kill it from outside
    with store.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = sa.create_engine(store.engine.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    admin.dispose()
    with pytest.raises(StoreError):  # the pooled connection is dead: this request fails...
        store.get_by_id(sub.id)
    assert store.get_by_id(sub.id).status is Status.SUBSCRIBED  # ...and the pool is fresh again
