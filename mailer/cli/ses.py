"""CLI commands: `ses setup` and `ses status` (the SES/SNS side of feedback)."""

from __future__ import annotations

import click

from mailer.cli import pass_ctx


def _yes_no(value: bool | None, unknown: str = "unknown (not reported by this endpoint)") -> str:
    return unknown if value is None else ("yes" if value else "no")


@click.group("ses")
def ses() -> None:
    """Set up and inspect the Amazon SES account (configuration set, feedback topic)."""


@ses.command("setup")
@click.option("--dry-run", is_flag=True, help="Only report what would be created or changed.")
@click.option("--subscribe-webhook", is_flag=True,
              help="Also subscribe {web.base_url}/webhooks/ses (https) to the topic (same as --feedback webhook).")
@click.option("--feedback", "feedback", type=click.Choice(["webhook", "sqs"]),
              help="How feedback leaves the topic: the web app's webhook, or an SQS queue (with a dead-letter "
                   "queue) that `send` and `feedback poll` read.")
@pass_ctx
def setup_cmd(ctx, dry_run: bool, subscribe_webhook: bool, feedback: str | None) -> None:
    """Create or fix, idempotently, the configuration set, SNS topic and event destination."""
    from mailer.aws.sesadmin import setup

    if subscribe_webhook and feedback == "sqs":
        raise click.UsageError("--subscribe-webhook and --feedback sqs: choose one")
    report = setup(ctx.settings, dry_run=dry_run, subscribe_webhook=subscribe_webhook or feedback == "webhook",
                   feedback_queue=feedback == "sqs")
    for step in report.steps:
        click.echo(str(step))
    for note in report.notes:
        click.echo(f"note: {note}")
    if dry_run:
        click.echo("dry run: " + ("changes needed, nothing was changed" if report.changed else "nothing to change"))
    else:
        click.echo("done: " + ("changes made" if report.changed else "everything was already in place"))


@ses.command("status")
@pass_ctx
def status_cmd(ctx) -> None:
    """Show the send quota, sending state, sandbox, sender-domain verification and DKIM."""
    from mailer.aws.sesadmin import status

    st = status(ctx.settings)
    click.echo(f"region: {st.region}")
    click.echo(f"send quota: {st.max_24_hour_send:g} per 24 hours, {st.max_send_rate:g} per second, "
               f"{st.sent_last_24_hours:g} sent in the last 24 hours")
    click.echo(f"sending enabled: {_yes_no(st.sending_enabled)}")
    click.echo(f"production access (out of the sandbox): {_yes_no(st.production_access)}")
    if st.enforcement_status:
        click.echo(f"enforcement status: {st.enforcement_status}")
    if st.domain_verification is None:
        click.echo(f"domain {st.domain}: not an SES identity")
    else:
        click.echo(f"domain {st.domain}: verification {st.domain_verification}, "
                   f"DKIM {st.dkim_status or 'none'} (signing {'on' if st.dkim_signing else 'off'})")
    if st.configuration_set:
        if not st.configuration_set_exists:
            click.echo(f"configuration set {st.configuration_set}: missing")
        else:
            events = ", ".join(st.event_types) or "no feedback event destination"
            click.echo(f"configuration set {st.configuration_set}: {events}"
                       + (f" -> {st.event_topic}" if st.event_topic else ""))
    else:
        click.echo("configuration set: none configured (ses.configuration_set)")
    for problem in st.problems:
        click.echo(f"warning: {problem}")


@ses.command("check-dkim")
@click.argument("message", type=click.Path(dir_okay=False))
@pass_ctx
def check_dkim_cmd(ctx, message: str) -> None:
    """Check a received message (.eml) has List-Unsubscribe(-Post) in an aligned DKIM h= list."""
    from mailer.aws.dkim import REQUIRED, DkimCheckError, check_file

    report = check_file(message)
    click.echo(f"From domain: {report.from_domain}")
    for name in REQUIRED:
        click.echo(f"header {name}: {'present' if name in report.present else 'MISSING'}")
    if not report.signatures:
        click.echo("no DKIM-Signature headers")
    for sig in report.signatures:
        covered = ", ".join(f"{h} {'signed' if sig.covers(h) else 'NOT signed'}" for h in REQUIRED)
        aligned = "aligned" if sig.aligned_with(report.from_domain) else "not aligned"
        click.echo(f"DKIM d={sig.domain} s={sig.selector} ({aligned}): {covered}")
    for result in report.authentication_results:
        click.echo(f"Authentication-Results: {result}")
    if not report.ok:
        raise DkimCheckError(f"no DKIM signature aligned with {report.from_domain} covers "
                             f"{' and '.join(REQUIRED)}", path=message)
    click.echo("ok: one-click unsubscribe headers are covered by an aligned DKIM signature")


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(ses)
