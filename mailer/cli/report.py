"""CLI command: `report` (one self-contained HTML page with charts)."""

from __future__ import annotations

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
    from mailer.atomicfile import atomic_open
    from mailer.web.report import build_report

    with ctx.store() as store:
        page = build_report(store, campaign_id)
    try:  # written whole or not at all
        with atomic_open(out, "w", encoding="utf-8") as fh:
            fh.write(page)
    except OSError as exc:
        raise TwirMailError(f"cannot write the report: {exc.strerror}", path=out) from None
    click.echo(f"wrote {out} ({len(page.encode('utf-8')) / 1024:.0f} KiB)")


def register(cli: click.Group) -> None:
    cli.add_command(report_cmd)
