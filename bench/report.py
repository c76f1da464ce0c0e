"""Report benchmark: the `report` page's queries on a list with history.

    python bench/report.py           # quick: 5k subscribers x 10 campaigns, 300 departures
    python bench/report.py --full    # 20k x 25 (500k deliveries), 1000 departures (or BENCH_FULL=1)

Prints medians of 3 runs of `unsubscribes_by_issue` (departures blamed on the last issue each
reader got), `subscribers_per_week` and the whole page, next to `all_delivery_counts` (what
`twir-mail campaigns` runs) on the same database, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_ms, on_both_databases, size  # noqa: E402


def fill(store, subscribers: int, campaigns: int, departures: int) -> None:
    from mailer.store.schema import campaigns as C, deliveries as D, history as H, subscribers as S

    now = dt.datetime.now(dt.timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(S.insert(), [{"id": i + 1, "email": f"a{i}@example.org", "email_norm": f"a{i}@example.org",
                                   "email_hash": f"h{i}", "status": "subscribed", "source": "cli",
                                   "created_at": now, "updated_at": now} for i in range(subscribers)])
        conn.execute(H.insert(), [{"subscriber_id": i + 1, "at": now - dt.timedelta(days=i % 400),
                                   "new_status": "subscribed", "reason": "import"} for i in range(subscribers)])
        for c in range(campaigns):
            cid = conn.execute(C.insert().values(
                kind="send", issue_number=600 + c, issue_path="x.md", subject="s", status="done", transport="ses",
                created_at=now, updated_at=now).returning(C.c.id)).scalar_one()
            at = now - dt.timedelta(days=7 * (campaigns - c))
            conn.execute(D.insert(), [{"campaign_id": cid, "subscriber_id": i + 1, "email": f"a{i}@example.org",
                                       "status": "sent", "sent_at": at} for i in range(subscribers)])
        conn.execute(H.insert(), [{"subscriber_id": (i * 7) % subscribers + 1, "at": now - dt.timedelta(days=i % 170),
                                   "new_status": "unsubscribed" if i % 9 else "complained", "reason": "x"}
                                  for i in range(departures)])


def bench(url: str, label: str, sizes: tuple[int, int, int]) -> None:
    from mailer.config import load_settings, with_overrides
    from mailer.store import open_store
    from mailer.web.report import build_report

    with open_store(with_overrides(load_settings(env={}), database={"url": url}), upgrade=True) as store:
        fill(store, *sizes)
        figures = {"unsubscribes_by_issue": median_ms(store.unsubscribes_by_issue, 3),
                   "subscribers_per_week": median_ms(store.subscribers_per_week, 3),
                   "whole page": median_ms(lambda: build_report(store), 3),
                   "all_delivery_counts (reference)": median_ms(store.all_delivery_counts, 3)}
    print(f"{label:10} {sizes[0] * sizes[1]} deliveries, {sizes[2]} departures: "
          + ", ".join(f"{k} {v:.0f} ms" for k, v in figures.items()))


def main() -> None:
    sizes = size((5_000, 10, 300), (20_000, 25, 1_000))
    on_both_databases(lambda url, label: bench(url, label, sizes), "report")

if __name__ == "__main__":
    main()
