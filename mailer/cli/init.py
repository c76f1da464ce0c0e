"""CLI command: `init`, a new editor's first step (config file, database, preview list)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mailer.errors import ConfigError, TwirMailError


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(init_cmd)


def _ask_address() -> str | None:
    try:
        answer = click.prompt("Your address for test sends (the preview list; empty: none yet)",
                              default="", show_default=False, err=True)
    except click.Abort:  # no terminal (stdin closed): no address
        return None
    return answer.strip() or None


def _exists(path: Path) -> ConfigError:
    return ConfigError("already exists; not overwritten (edit it, or remove it to start again)", path=path)


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text``; never overwrite (O_EXCL closes the check-then-write race)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        raise ConfigError(f"cannot create: {exc.strerror}", path=path) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:  # a full disk: half a config would block the next `init`
        path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write: {exc.strerror}", path=path) from None


def _next_steps(path: Path) -> list[str]:
    from mailer.config import CONFIG_NAME

    # Found without --config only as ./twir-mail.toml.
    config = "" if path.resolve() == Path(CONFIG_NAME).resolve() else f" --config {path}"
    return [f"twir-mail{config} check ISSUE.md              # lint the issue before anything else",
            f"twir-mail{config} preview ISSUE.md            # desktop, mobile, dark and text views, live",
            f"twir-mail{config} send --to preview ISSUE.md  # a test send to the preview list"]


@click.command("init")
@click.option("--preview-address", metavar="ADDR",
              help="Put ADDR on the preview list (test sends); given, nothing is asked.")
@click.pass_context
def init_cmd(click_ctx, preview_address: str | None) -> None:
    """Start here: write a commented twir-mail.toml, create the database, join the preview list.

    Writes ./twir-mail.toml (or --config FILE); an existing file is never overwritten.
    """
    from mailer.config import CONFIG_NAME, config_template, load_settings
    from mailer.store import normalize, open_store

    path = Path(click_ctx.obj.config or CONFIG_NAME)
    if path.exists():  # said before any question is asked
        raise _exists(path)
    address = preview_address if preview_address is not None else _ask_address()
    if address:
        normalize(address)  # a bad address: nothing written
    _write_new(path, config_template())
    try:
        settings = load_settings(path)
        with open_store(settings, upgrade=True) as store:
            if address:
                store.add(address, list_name=settings.send.preview_list, reason="cli", detail="init")
    except (TwirMailError, KeyboardInterrupt):
        path.unlink(missing_ok=True)  # all or nothing: the next `init` starts clean
        raise
    click.echo(f"wrote {path}")
    click.echo(f"database ready: {_shown_database(settings)}")
    if address:
        click.echo(f"{address} is on the {settings.send.preview_list} list")
    else:
        click.echo(f"preview list empty: `twir-mail subscribers add ADDR --list {settings.send.preview_list}`")
    click.echo("next:")
    for line in _next_steps(path):
        click.echo(f"  {line}")


def _shown_database(settings) -> str:
    from mailer.config import mask

    return mask(settings.database_url)
