"""The subscriber store: SQLite by default, PostgreSQL in production (same schema and queries).

``open_store(settings)`` returns a ready ``Store``; see writes.py for the
suppression rules and importer.py for CSV/Mailchimp imports.
"""

from __future__ import annotations

from mailer.config import Settings
from mailer.store.addresses import normalize
from mailer.store.writes import Store

__all__ = ["Store", "normalize", "open_store"]


def open_store(settings: Settings, *, upgrade: bool | None = None) -> Store:
    """Open the database of ``settings``.

    ``upgrade=None``: SQLite (the embedded default) migrates itself; any other
    database must already be at the latest migration (`twir-mail db upgrade`).
    ``True`` always upgrades; ``False`` never does (and fails when behind).
    """
    store = Store(settings)
    try:
        store.ensure_schema(upgrade)
    except BaseException:
        store.close()
        raise
    return store
