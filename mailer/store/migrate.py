"""Alembic, driven from code: the migration scripts ship inside the package."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    # BEGIN IMMEDIATE on SQLite: two processes upgrading at once queue up instead of failing.
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
        command.upgrade(alembic_config(conn), revision)
        conn.commit()


def known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def compare_server_default(context, inspected_column, metadata_column, inspected_default,
                           metadata_default, rendered_metadata_default):
    """Alembic's SQLite comparison misreads an empty-string default ('') as a change."""
    def bare(text):
        return re.sub(r"^\(?\"?'(.*)'\"?\)?$", r"\1", text) if text is not None else None

    if context.dialect.name == "sqlite" and bare(inspected_default) == bare(rendered_metadata_default):
        return False
    return None  # let Alembic decide
