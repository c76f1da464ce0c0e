"""Sliding-window counters in the ``rate_events`` table (shared by every app instance)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from mailer.store.engine import utcnow
from mailer.store.schema import rate_events, sns_messages

Rules = dict  # key -> (limit, window: dt.timedelta)


class RateLimitOps:
    def rate_hit(self, rules: Rules, *, now: dt.datetime | None = None) -> set[str]:
        """Return the keys already at their limit within their window; if none is, count one
        event for each. Check and count are one atomic step: SQLite's BEGIN IMMEDIATE takes the
        write lock first; PostgreSQL takes a transaction-scoped advisory lock per key (in sorted
        order, so two requests never wait on each other crosswise). Without it, concurrent
        requests all counted below the limit and all got through.

        Old events of these keys are deleted on the way, so the table stays small.
        """
        now = now or utcnow()
        keys = sorted(rules)
        with self._write() as conn:
            if self.dialect == "postgresql":
                for key in keys:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))
            full = set()
            for key in keys:
                limit, window = rules[key]
                conn.execute(sa.delete(rate_events).where(rate_events.c.key == key, rate_events.c.at < now - window))
                count = conn.execute(sa.select(sa.func.count()).select_from(rate_events)
                                     .where(rate_events.c.key == key)).scalar_one()
                if count >= limit:
                    full.add(key)
            if not full:
                conn.execute(sa.insert(rate_events), [{"key": key, "at": now} for key in keys])
        return full

    def prune_web_tables(self, *, rate_older_than: dt.timedelta, sns_older_than: dt.timedelta,
                         now: dt.datetime | None = None) -> tuple[int, int]:
        """Delete rate-limit events and SNS MessageIds nobody will ask about again
        (both tables otherwise grow with every request). Returns the rows deleted."""
        now = now or utcnow()
        with self._write() as conn:
            rates = conn.execute(sa.delete(rate_events).where(rate_events.c.at < now - rate_older_than)).rowcount
            sns = conn.execute(sa.delete(sns_messages).where(sns_messages.c.received_at < now - sns_older_than)
                               ).rowcount
        return rates, sns
