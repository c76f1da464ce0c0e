"""CLI commands: send (not built yet)."""

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
