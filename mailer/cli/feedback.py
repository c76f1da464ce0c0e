"""CLI commands: `feedback poll` (SES feedback from the SQS queue)."""

from __future__ import annotations

import click

from mailer.cli import pass_ctx
from mailer.errors import ConfigError


@click.group("feedback")
def feedback() -> None:
    """SES feedback (bounces, complaints, deliveries) from the SQS queue."""


def _line(result) -> str:
    return (f"received {result.received} message(s): applied {result.applied} ({result.events} event(s)), "
            f"{result.repeated} already applied, {len(result.bad)} unparsable left on the queue")


@feedback.command("poll")
@click.option("--once", is_flag=True, help="Apply what is queued now, then exit (else poll until Ctrl-C).")
@pass_ctx
def poll_cmd(ctx, once: bool) -> None:
    """Apply queued SES feedback, deleting each message once applied."""
    from mailer.feedback.queue import FeedbackQueue

    settings = ctx.settings
    if not settings.feedback.queue_url:
        raise ConfigError("feedback.queue_url is empty: set TWIR_MAIL_FEEDBACK_QUEUE_URL to the SQS queue's URL "
                          "(`twir-mail ses setup --feedback sqs` creates one)", setting="feedback.queue_url")
    with ctx.store() as store:
        queue = FeedbackQueue(store, settings)
        if once:
            result = queue.drain()
            _show(result)
            return
        while True:  # Ctrl-C ends it (exit 130); each message is applied or left, never half done
            result = queue.poll_once()
            if result.received:
                _show(result)


def _show(result) -> None:
    click.echo(_line(result))
    for bad in result.bad:
        click.echo(f"warning: unparsable message {bad} (left for the queue's dead-letter policy)", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(feedback)
