"""The send loop's batched ledger steps, on SQLite and PostgreSQL.

Batching must not weaken the guarantee: every row is claimed (``sending``) in the
database before its transport call, and recorded after it.
"""

from __future__ import annotations

import sqlalchemy as sa

from mailer.config import with_overrides
from mailer.models import CampaignStatus
from mailer.sending import campaign as cmp
from mailer.sending.campaign.sender import batch_size
from mailer.sending.transport import NullTransport
from mailer.store.schema import deliveries as D
from tests.fixtures.send import add_subscribers, make_rendered


class Checking(NullTransport):
    """A null sink that looks the recipient's row up in the ledger at each call."""

    def __init__(self, store, campaign_id: int):
        super().__init__()
        self.store, self.campaign_id, self.seen = store, campaign_id, []

    def send(self, raw, *, sender, recipient, tags=None):
        with self.store.engine.connect() as conn:  # another connection: sees committed state only
            status = conn.execute(sa.select(D.c.status).where(
                D.c.campaign_id == self.campaign_id, D.c.email == recipient)).scalar_one()
        self.seen.append(status)
        return super().send(raw, sender=sender, recipient=recipient, tags=tags)


def commits_during(engine, fn):
    count = [0]

    def on_commit(_conn):
        count[0] += 1

    sa.event.listen(engine, "commit", on_commit)
    try:
        return fn(), count[0]
    finally:
        sa.event.remove(engine, "commit", on_commit)


def test_each_row_is_claimed_before_its_send_and_recorded_after(store, db_settings):
    n = 150
    add_subscribers(store, n)
    settings = with_overrides(db_settings, send={"workers": 4})
    rendered = make_rendered()
    campaign = cmp.start(store, rendered, settings, NullTransport(), list_name="main")
    sink = Checking(store, campaign.id)
    report, commits = commits_during(store.engine, lambda: cmp.deliver(store, campaign, rendered, sink, settings,
                                                                      rate=None))
    assert report.status is CampaignStatus.DONE and report.counts["sent"] == n == sink.count
    assert sink.seen == ["sending"] * n  # committed as claimed before every transport call
    # About one transaction per batch (claims and records share it), not one per few messages.
    steps = n / batch_size(4, None)
    assert commits <= 2 * steps + 8, commits


def test_batches_follow_the_rate():
    assert batch_size(8, None) == 64  # unpaced: the largest batch
    assert batch_size(8, 14) == 8  # SES's default rate: never below the worker count
    assert batch_size(8, 40) == 20  # about half a second of sending
    assert batch_size(8, 1000) == 64
