"""Guard benchmark: what one look at a campaign's bounce and complaint rates costs.

    python bench/guard.py            # quick: 20k recipients, 60k older feedback rows, SQLite and PostgreSQL
    python bench/guard.py --full     # 100k recipients, 300k older feedback rows (or BENCH_FULL=1)

The send loop asks `Store.campaign_feedback` at most every 0.5 s (guard.CHECK_EVERY), from the
thread that also records outcomes; this prints the median of 15 calls next to the median of
`Store.delivery_counts` on the same database (a query the sender already runs), so the two
can be compared on the same machine and load.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms, on_both_databases, size  # noqa: E402


def fill(store, recipients: int, old_feedback: int) -> int:
    """A sent campaign of ``recipients`` rows (2% hard bounces, 0.1% complaints) and years of older feedback."""
    import sqlalchemy as sa

    from mailer.store.schema import campaigns, deliveries, feedback_events, lists

    now = dt.datetime.now(dt.timezone.utc)
    with store.engine.begin() as conn:
        list_id = conn.execute(sa.select(lists.c.id).where(lists.c.name == "main")).scalar_one()
        cid = conn.execute(campaigns.insert().values(
            kind="send", issue_number=700, issue_path="x.md", list_id=list_id, subject="s", status="sending",
            transport="ses", html_bytes=1, created_at=now, updated_at=now).returning(campaigns.c.id)).scalar_one()
        conn.execute(deliveries.insert(), [
            {"campaign_id": cid, "email": f"r{i}@example.com", "status": "sent", "message_id": f"m-{i}",
             "sent_at": now} for i in range(recipients)])
        conn.execute(feedback_events.insert(), [
            {"kind": "bounce-permanent" if i % 3 else "complaint", "at": now - dt.timedelta(days=1 + i % 900),
             "ses_message_id": f"old-{i}"} for i in range(old_feedback)])
        conn.execute(feedback_events.insert(), [
            {"kind": "bounce-permanent", "at": now, "ses_message_id": f"m-{i}"} for i in range(0, recipients, 50)]
            + [{"kind": "complaint", "at": now, "ses_message_id": f"m-{i}"} for i in range(7, recipients, 1000)])
    return cid


def bench(url: str, label: str, recipients: int, old: int) -> None:
    from mailer.config import load_settings, with_overrides
    from mailer.store import open_store

    settings = with_overrides(load_settings(env={}), database={"url": url})
    with open_store(settings, upgrade=True) as store:
        cid = fill(store, recipients, old)
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        counts = store.campaign_feedback(cid, since=since)
        guard = median_ms(lambda: store.campaign_feedback(cid, since=since), 15)
        ref = median_ms(lambda: store.delivery_counts(cid), 15)
    print(f"{label:10} {recipients:>7} recipients, {old + counts.hard_bounces + counts.complaints:>7} feedback rows: "
          f"campaign_feedback median {guard:7.1f} ms ({counts.hard_bounces} hard, {counts.complaints} complaints); "
          f"delivery_counts median {ref:7.1f} ms")


def main() -> None:
    recipients, old = size((20_000, 60_000), (100_000, 300_000))
    on_both_databases(lambda url, label: bench(url, label, recipients, old), "guard")

if __name__ == "__main__":
    main()
