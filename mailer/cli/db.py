"""CLI commands: `db upgrade`, `db current`."""

from __future__ import annotations

import click

from mailer.cli import pass_ctx


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(db)


@click.group()
def db() -> None:
    """Database migrations ([database] url / TWIR_MAIL_DATABASE_URL)."""


@db.command()
@pass_ctx
def upgrade(ctx) -> None:
    """Apply every pending migration (safe to run repeatedly)."""
    from mailer.store.core import StoreBase

    ctx.note_unconfigured()
    with StoreBase(ctx.settings) as store:
        before = store.current_revision()
        store.upgrade()
        after = store.current_revision()
    if before == after:
        click.echo(f"database already at {after} (head)")
    else:
        click.echo(f"database upgraded: {before or 'empty'} -> {after}")


@db.command()
@pass_ctx
def current(ctx) -> None:
    """Show the database's migration revision and whether it is up to date."""
    from mailer.store import migrate
    from mailer.store.core import StoreBase

    with StoreBase(ctx.settings) as store:
        rev = store.current_revision()
    head = migrate.head_revision()
    state = "up to date" if rev == head else f"behind (head is {head}): run `twir-mail db upgrade`"
    click.echo(f"{rev or 'empty'} {state}")
