"""`twir-mail report`: the page's figures equal the database's, it loads nothing from anywhere,
and it looks right in headless Chromium (screenshot saved for a human to look at)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from mailer.feedback.apply import apply_events
from mailer.feedback.events import EventKind, SesEvent
from mailer.models import Status
from mailer.sending import campaign as cmp
from mailer.sending.transport import open_transport
from mailer.store.schema import deliveries as D, feedback_events as F, history as H
from mailer.web.report import build_report
from tests.fixtures.send import add_subscribers, make_rendered

T0 = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.timezone.utc)


def send_issue(store, settings, number: int, at: dt.datetime) -> int:
    transport = open_transport(settings)
    c = cmp.start(store, make_rendered(number), settings, transport, list_name="main")
    cmp.deliver(store, c, make_rendered(number), transport, settings, rate=None)
    # Spread the sends over minutes, as a paced send does (the outbox sends in a blink).
    with store.engine.begin() as conn:
        ids = conn.execute(sa.select(D.c.id).where(D.c.campaign_id == c.id).order_by(D.c.id)).scalars().all()
        for i, did in enumerate(ids):
            conn.execute(D.update().where(D.c.id == did).values(sent_at=at + dt.timedelta(seconds=7 * i)))
    return c.id


def feedback(store, settings, campaign_id, plan: dict[int, tuple[EventKind, str]], at):
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(D.c.email, D.c.message_id).where(D.c.campaign_id == campaign_id)
                            .order_by(D.c.id)).all()
    for i, (email, mid) in enumerate(rows):
        kind, bounce = plan.get(i, (EventKind.DELIVERY, ""))
        apply_events(store, settings, [SesEvent(kind, email, mid, bounce_type=bounce)],
                     now=at + dt.timedelta(minutes=20 * (i % 5)))


@pytest.fixture
def history_db(store, db_settings):
    subs = add_subscribers(store, 40)
    c1 = send_issue(store, db_settings, 700, T0)
    feedback(store, db_settings, c1, {3: (EventKind.BOUNCE, "Permanent"), 9: (EventKind.BOUNCE, "Transient"),
                                      12: (EventKind.COMPLAINT, ""), 20: (EventKind.DELIVERY_DELAY, ""),
                                      25: (EventKind.REJECT, "")}, T0)
    for s in subs[30:33]:
        store.set_status(s.id, Status.UNSUBSCRIBED, reason="unsubscribe-link")
    c2 = send_issue(store, db_settings, 701, T0 + dt.timedelta(days=7))
    feedback(store, db_settings, c2, {}, T0 + dt.timedelta(days=7))
    store.set_status(subs[34].id, Status.UNSUBSCRIBED, reason="unsubscribe-link")
    # Give the list a history over several weeks (everything above happened "now").
    with store.engine.begin() as conn:
        for row in conn.execute(sa.select(H.c.id, H.c.subscriber_id, H.c.new_status)).all():
            # joined over six weeks before issue 700; its bounce and complaint the day after it
            at = T0 - dt.timedelta(weeks=row.subscriber_id % 6) if row.new_status == "subscribed" \
                else T0 + dt.timedelta(days=1)
            conn.execute(H.update().where(H.c.id == row.id).values(at=at))
        late = conn.execute(sa.select(H.c.id).where(H.c.new_status == "unsubscribed")).scalars().all()
        for i, hid in enumerate(late):  # three after issue 700, one after issue 701
            at = T0 + dt.timedelta(days=1 if i < 3 else 8)
            conn.execute(H.update().where(H.c.id == hid).values(at=at))
    return store, c1, c2


def figures(page: str, campaign_id: int) -> dict[str, int]:
    section = page.split(f'data-campaign="{campaign_id}"', 1)[1].split("</section>", 1)[0]
    return {k: int(v) for k, v in re.findall(r'<tr data-figure="([^"]+)"><td>[^<]*</td><td class="n">(\d+)</td>',
                                             section)}


def from_db(store, campaign_id) -> dict[str, int]:
    """The same figures counted straight from the tables, independently of the store's queries."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(D.c.status, D.c.event, D.c.message_id).where(D.c.campaign_id == campaign_id)).all()
        kinds = conn.execute(sa.select(F.c.kind, F.c.ses_message_id)).all()
    mids = {r.message_id for r in rows}
    by_kind = lambda k: len({m for kind, m in kinds if kind == k and m in mids})  # noqa: E731
    return {"sent": sum(r.status == "sent" for r in rows),
            "delivered": sum(r.event in ("delivery", "complaint") for r in rows),
            "hard bounces": by_kind("bounce-permanent"), "soft bounces": by_kind("bounce-transient"),
            "complaints": by_kind("complaint"), "rejected": sum(r.event == "reject" for r in rows),
            "delayed (no outcome yet)": sum(r.event == "delivery-delay" for r in rows),
            "failed": sum(r.status == "failed" for r in rows), "skipped": sum(r.status == "skipped" for r in rows),
            "unknown": sum(r.status == "sending" for r in rows), "queued": sum(r.status == "queued" for r in rows)}


def test_report_figures_equal_the_database(history_db):
    store, c1, c2 = history_db
    page = build_report(store)
    for cid in (c1, c2):
        assert figures(page, cid) == from_db(store, cid)
    assert figures(page, c1)["hard bounces"] == 1 and figures(page, c1)["complaints"] == 1
    # Departures are blamed on the last issue each reader got before leaving.
    costly = re.findall(r'<tr data-issue="(\d+)"><td>#\d+</td><td class="n">(\d+)</td><td class="n">(\d+)</td>', page)
    assert costly == [("700", "3", "1"), ("701", "1", "0")]
    weeks = dict(re.findall(r'<tr data-week="([\d-]+)"><td>[\d-]+</td><td class="n">(\d+)</td>', page))
    with store.engine.connect() as conn:
        joined = conn.execute(sa.select(H.c.at).where(H.c.new_status == "subscribed")).scalars().all()
    expected: dict[str, int] = {}
    for at in joined:
        monday = (at.date() - dt.timedelta(days=at.weekday())).isoformat()
        expected[monday] = expected.get(monday, 0) + 1
    assert {w: int(n) for w, n in weeks.items() if int(n)} == expected
    assert "<svg" in page and not re.search(r'(src|href)="(https?:)?//', page)


@pytest.mark.browser
def test_report_in_chromium_makes_no_request(history_db, browser, screenshot_dir, tmp_path):
    store, c1, c2 = history_db
    out = tmp_path / "report.html"
    out.write_text(build_report(store), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(out.as_uri())
    page.wait_for_load_state("networkidle")
    assert requests == [out.as_uri()]  # the page itself, nothing else
    assert page.locator("section.campaign svg").count() == 4 and page.locator("svg.pygal-chart").count() == 6
    shot = screenshot_dir / f"report-{store.dialect}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert shot.stat().st_size > 10_000


def test_campaigns_show_prints_the_same_figures(history_db, store_url, run_cli):
    store, c1, _ = history_db
    db = from_db(store, c1)
    r = run_cli("campaigns", "show", str(c1), env={"TWIR_MAIL_DATABASE_URL": store_url})
    assert r.code == 0, r.err
    assert (f"  delivered {db['delivered']} (90.0%), bounced 2 (5.0%) (hard 1 (2.5%), soft 1), "
            f"complained 1 (2.5%), rejected 1 (2.5%), delayed 1 (no outcome yet)") in r.out
    assert "  messages sent from 2026-10-05 09:00:00 to 09:04:33 UTC (4m33s)" in r.out


def test_report_cli_writes_the_page(history_db, store_url, run_cli, workdir):
    r = run_cli("report", "--out", "r.html", env={"TWIR_MAIL_DATABASE_URL": store_url})
    assert r.code == 0 and r.out.startswith("wrote r.html (") and "<svg" in (workdir / "r.html").read_text()
    bad = run_cli("report", "--out", "nodir/r.html", env={"TWIR_MAIL_DATABASE_URL": store_url})
    assert bad.code == 1 and bad.err.startswith("error: nodir/r.html: cannot write the report")


def test_without_pygal_the_report_says_how_to_install_it(store, monkeypatch):
    import sys

    from mailer.web.report import ReportError

    monkeypatch.setitem(sys.modules, "pygal", None)  # as if not installed
    with pytest.raises(ReportError, match=r"pip install 'twir-mail\[report\]'"):
        build_report(store)
