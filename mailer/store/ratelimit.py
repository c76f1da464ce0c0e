"""Sliding-window counters in the ``rate_events`` table (shared by every app instance)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from mailer.store.schema import rate_events


class RateLimitOps:
    def rate_hit(self, keys: list[str], *, limit: int, window: dt.timedelta,
                 now: dt.datetime | None = None) -> set[str]:
        """Return the keys already at ``limit`` within ``window``; if none is, count one event for each.

        Old events of these keys are deleted on the way, so the table stays small.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        since = now - window
        with self._write() as conn:
            conn.execute(sa.delete(rate_events).where(rate_events.c.key.in_(keys), rate_events.c.at < since))
            rows = conn.execute(
                sa.select(rate_events.c.key, sa.func.count()).where(rate_events.c.key.in_(keys))
                .group_by(rate_events.c.key)
            ).all()
            full = {key for key, count in rows if count >= limit}
            if not full:
                conn.execute(sa.insert(rate_events), [{"key": key, "at": now} for key in keys])
        return full
