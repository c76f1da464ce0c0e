"""Migrations create exactly mailer/store/schema.py, on both dialects."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mailer.store import migrate
from mailer.store.engine import create_engine
from mailer.store.schema import metadata


def test_migrations_match_schema_metadata(store_url):
    engine = create_engine(store_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                        "compare_server_default": migrate.compare_server_default})
            assert compare_metadata(ctx, metadata) == []
            tables = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
            assert tables == set(metadata.tables)
            assert list(conn.execute(sa.text("select name from lists order by id")).scalars()) == ["main", "preview"]
        assert migrate.current_revision(engine) == migrate.head_revision()
        migrate.upgrade(engine)  # idempotent
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_busy_timeout_and_foreign_keys(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_postgres_urls_use_psycopg3():
    from mailer.store.engine import normalize_url

    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"


def test_head_constant_matches_the_migration_scripts():
    head, revisions = migrate.script_revisions()
    assert migrate.HEAD == head and head in revisions
