"""Migrations create exactly mailer/store/schema.py, on both dialects."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mailer.store import migrate
from mailer.store.engine import create_engine
from mailer.store.schema import full_metadata


def test_migrations_match_schema_metadata(store_url):
    engine = create_engine(store_url)
    try:
        assert migrate.current_revision(engine) is None  # an empty database (PostgreSQL: its own schema)
        migrate.upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                        "compare_server_default": migrate.compare_server_default})
            assert compare_metadata(ctx, full_metadata()) == []
            tables = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
            assert tables == set(full_metadata().tables)
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


def _open_and_add(url: str, n: int) -> int:
    from mailer.config import load_settings, with_overrides
    from mailer.store import open_store

    settings = with_overrides(load_settings(env={}), database={"url": url})
    with open_store(settings) as store:
        return store.add(f"p{n}@example.com").id


def test_first_use_from_several_processes_at_once(tmp_path):
    """The web app and a CLI command may both find a fresh SQLite file: both must work."""
    from concurrent.futures import ProcessPoolExecutor

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with ProcessPoolExecutor(4) as pool:
        ids = list(pool.map(_open_and_add, [url] * 8, range(8)))
    assert sorted(ids) == list(range(1, 9))
    engine = create_engine(url)
    assert migrate.current_revision(engine) == migrate.HEAD
    engine.dispose()


def test_the_full_schema_is_a_copy_the_store_tables_stay_as_declared():
    # The partial index joins a copy: the tables every query uses are the same in every process
    # (declaring it on them once needed the PostgreSQL dialect, and changed them mid-run).
    from mailer.store import schema

    full = full_metadata()
    assert "uq_campaigns_issue_list_send" in {ix.name for ix in full.tables["campaigns"].indexes}
    assert "uq_campaigns_issue_list_send" not in {ix.name for ix in schema.campaigns.indexes}
    assert set(full.tables) == set(schema.metadata.tables) and full is full_metadata()


def test_switching_a_new_file_to_wal_waits_for_a_writer_instead_of_failing(tmp_path):
    # A fresh file is still in rollback-journal mode; switching it to WAL needs an exclusive
    # lock. While another connection holds the write lock, SQLite answers "database is locked"
    # at once instead of calling the busy handler (its deadlock rule): the web app and a CLI
    # command first opening one new file failed that way now and then.
    import sqlite3
    import threading

    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (a)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    done = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    done.start()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1  # after the commit
    finally:
        done.join()
        writer.close()
        engine.dispose()
