"""The feedback applier on its own: claims, release on failure, unknown addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mailer.feedback import apply as applyfeedback
from mailer.feedback.events import parse_ses_events
from mailer.errors import StoreError
from mailer.models import Status
from mailer.store.schema import feedback_events, sns_messages

DATA = Path(__file__).parent / "data" / "ses"


def events(name: str):
    return parse_ses_events((DATA / f"{name}.json").read_text())


def rows(store, table):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table)).all()


def test_failure_releases_the_claim_so_a_retry_applies(store, db_settings):
    sub = store.add("gone@example.com")
    with store.engine.begin() as conn:  # a real failure half-way: the table is missing
        conn.exec_driver_sql("ALTER TABLE feedback_events RENAME TO feedback_events_away")
    with pytest.raises(StoreError, match='database error'):  # the store's one-line error, not a driver's
        applyfeedback.apply_notification(store, db_settings, "sns-1", events("bounce-identity"))
    assert rows(store, sns_messages) == [] and store.get_by_id(sub.id).status is Status.SUBSCRIBED
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE feedback_events_away RENAME TO feedback_events")
    assert applyfeedback.apply_notification(store, db_settings, "sns-1", events("bounce-identity"))
    assert store.get_by_id(sub.id).status is Status.BOUNCED
    assert not applyfeedback.apply_notification(store, db_settings, "sns-1", events("bounce-identity"))


def test_unknown_addresses_are_kept_for_the_record_only(store, db_settings):
    applyfeedback.apply_events(store, db_settings, events("complaint-event"))
    [row] = rows(store, feedback_events)
    assert row.subscriber_id is None and row.kind == "complaint"
    assert store.count()["complained"] == 0
