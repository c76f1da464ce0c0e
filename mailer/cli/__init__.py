"""The command line: the only layer that prints or exits.

Each command group lives in its own module (``render``, ``subscribers``, ...)
and registers itself on ``cli``. Library errors (``TwirMailError``) become one
line on stderr, ``error: file:line: message``, and a non-zero exit code.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from mailer.config import CONFIG_NAME, Settings, load_settings
from mailer.errors import TwirMailError

# Command -> the module that registers it (with its siblings). Only the module of the command
# being run is imported (click's lazy-loading pattern), so `twir-mail render` skips the
# subscriber, sending and web modules; `--help` loads them all. A test keeps this in step
# with what the modules register.
COMMANDS = {
    "init": "init", "render": "render", "check": "render", "preview": "render", "subscribers": "subscribers",
    "db": "db", "send": "send", "campaigns": "send", "serve": "web", "ses": "ses", "feedback": "feedback",
    "report": "report",
}
_loaded: set[str] = set()


def _load(module: str) -> None:
    if module not in _loaded:
        _loaded.add(module)
        importlib.import_module(f"{__name__}.{module}").register(cli)


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str):
        if name not in self.commands and name in COMMANDS:
            _load(COMMANDS[name])
        return super().get_command(ctx, name)


class Context:
    """What every command gets: the config location, loaded on first use."""

    def __init__(self, config: str | None, debug: bool):
        self.config = config
        self.debug = debug
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def store(self, *, upgrade: bool | None = None):
        """Open the database; first say where it is created when no config chose the place."""
        from mailer.store import open_store

        self.note_unconfigured()
        return open_store(self.settings, upgrade=upgrade)

    def note_unconfigured(self, *, outbox: bool = False) -> None:
        """No twir-mail.toml: a database or outbox must not appear silently in the current folder."""
        from mailer.config import unconfigured_paths

        for what, path in unconfigured_paths(self.settings, outbox=outbox):
            click.echo(f"note: no {CONFIG_NAME} found (here or --config): creating the {what} at {path} "
                       "(`twir-mail init` writes a config)", err=True)


pass_ctx = click.make_pass_decorator(Context)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "-c", type=click.Path(dir_okay=False), envvar="TWIR_MAIL_CONFIG",
              help="Settings file (default: ./twir-mail.toml if present, else built-in defaults).")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="twir-mail")
@click.pass_context
def cli(ctx: click.Context, config: str | None, debug: bool) -> None:
    """twir-mail: render, check and send This Week in Rust by email."""
    ctx.obj = Context(config, debug)


@cli.command("config")
@pass_ctx
def show_config(ctx: Context) -> None:
    """Show every setting as TOML: its value and where it came from (secrets masked)."""
    from mailer.config import as_toml

    click.echo(as_toml(ctx.settings), nl=False)


def _register() -> None:
    """Every command registered (tests and tools that walk the whole CLI)."""
    for module in dict.fromkeys(COMMANDS.values()):
        _load(module)


def err(message: str) -> None:
    click.echo(f"error: {message}", err=True)


# click >= 8.2 raises this for a group called without a command (8.1 printed the help and exited 0).
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv)
    try:
        rv = cli.main(args=argv, prog_name="twir-mail", standalone_mode=False)
    except click.exceptions.Abort:
        err("aborted")
        sys.exit(1)
    except _NO_ARGS_IS_HELP as exc:  # `twir-mail subscribers`: the group's help
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        # One line, like every other error (click's own form is four: usage, hint, blank, error).
        where = exc.ctx.command_path if exc.ctx else "twir-mail"
        err(f"{exc.format_message()} (see '{where} --help')")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        err(exc.format_message())
        sys.exit(exc.exit_code)
    except TwirMailError as exc:
        err(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        # `twir-mail subscribers list | head`: not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        err(f"unexpected {type(exc).__name__}: {exc} (this is a bug; rerun with --debug for details)")
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)
