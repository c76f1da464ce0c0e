"""Alembic, driven from code: the migration scripts ship inside the package (no alembic.ini).

Alembic itself is imported only to upgrade: checking that a database is at
``HEAD`` is one query, which keeps CLI and Lambda start-up fast.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Latest revision in migrations/versions (a test checks they agree). Bump with each new migration.
HEAD = "0001"


def alembic_config(connection: sa.Connection | None = None, url: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return HEAD


def script_revisions() -> tuple[str | None, set[str]]:
    """(head, all revisions) as the migration scripts on disk say."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return scripts.get_current_head(), {rev.revision for rev in scripts.walk_revisions()}


# Is there a version table (in the schema Alembic writes to)? Asked of the catalogue directly:
# SQLAlchemy's inspector (has_table) loads its reflection machinery, 15-30 ms of every store
# opening, the first event of a cold Lambda included.
_HAS_VERSION_TABLE = {
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'",
    "postgresql": "SELECT to_regclass('alembic_version')",
}


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        if conn.exec_driver_sql(_HAS_VERSION_TABLE[engine.dialect.name]).scalar() is None:
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def known_revisions() -> set[str]:
    return script_revisions()[1]


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command

    # BEGIN IMMEDIATE on SQLite: two processes upgrading at once queue up instead of failing.
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
        command.upgrade(alembic_config(conn), revision)
        conn.commit()


def compare_server_default(context, inspected_column, metadata_column, inspected_default,
                           metadata_default, rendered_metadata_default):
    """Alembic's SQLite comparison misreads an empty-string default ('') as a change."""
    def bare(text):
        return re.sub(r"^\(?\"?'(.*)'\"?\)?$", r"\1", text) if text is not None else None

    if context.dialect.name == "sqlite" and bare(inspected_default) == bare(rendered_metadata_default):
        return False
    return None  # let Alembic decide
