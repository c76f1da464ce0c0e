"""CLI command: `report` (one self-contained HTML page with charts)."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.cli import pass_ctx
from mailer.errors import TwirMailError


@click.command("report")
@click.option("--out", "out", default="twir-mail-report.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML file to write.")
@click.option("--campaign", "campaign_id", type=int, help="Only this campaign (default: the latest real sends).")
@pass_ctx
def report_cmd(ctx, out: str, campaign_id: int | None) -> None:
    """Write an HTML report: campaigns (messages per minute, feedback), subscribers per week, costly issues."""
    from mailer.store import open_store
    from mailer.web.report import build_report

    with open_store(ctx.settings) as store:
        page = build_report(store, campaign_id)
    path = Path(out)
    tmp = path.with_name(path.name + ".tmp")
    try:  # written whole or not at all
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TwirMailError(f"cannot write the report: {exc.strerror}", path=out) from None
    click.echo(f"wrote {out} ({len(page.encode('utf-8')) / 1024:.0f} KiB)")


def register(cli: click.Group) -> None:
    cli.add_command(report_cmd)
