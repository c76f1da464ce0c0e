"""CLI commands: `subscribers add|remove|forget|rehash|show|count|list|export|import`."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click

from mailer.atomicfile import atomic_open
from mailer.cli import pass_ctx
from mailer.errors import SubscriberError, TwirMailError
from mailer.models import Status

STATUSES = click.Choice([s.value for s in Status])
EXPORT_COLUMNS = ["email", "name", "status", "source", "created_at", "updated_at"]


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(subscribers)


def _open(ctx):
    return ctx.store()


def _validated(emails, *, new: bool = False) -> list[str]:
    """Check every address before changing anything (one bad one: nothing is done);
    ``new``: also refuse addresses the sender could never deliver to."""
    from mailer.store import normalize
    from mailer.store.addresses import undeliverable

    for email in emails:
        display = normalize(email)[0]
        if new and undeliverable(display):
            raise SubscriberError(f"cannot add {display}: {undeliverable(display)}", address=display)
    return list(emails)


REASON_MAX = 500  # a sentence or two for the history; `history` prints it on one line


def _reason(ctx, param, value: str | None) -> str | None:
    """--reason is kept in the history and printed by `history`: one line of text, not a file's worth."""
    from mailer.store.addresses import control_character

    if value is None:
        return None
    if "\n" in value or "\r" in value or control_character(value):
        raise click.BadParameter("must be one line without control characters")
    if len(value) > REASON_MAX:
        raise click.BadParameter(f"longer than {REASON_MAX} characters ({len(value)})")
    return value


@click.group()
def subscribers() -> None:
    """Manage the subscriber list ([database] url)."""


@subscribers.command()
@click.argument("emails", nargs=-1, required=True)
@click.option("--list", "list_name", default="main", show_default=True, help="List to add to.")
@click.option("--name", help="Display name.")
@click.option("--resubscribe", is_flag=True, help="Re-subscribe an address that left (needs --reason).")
@click.option("--reason", callback=_reason, help="Why (required with --resubscribe; kept in the history).")
@pass_ctx
def add(ctx, emails, list_name, name, resubscribe, reason) -> None:
    """Add addresses (subscribed). An address that left stays suppressed unless --resubscribe."""
    if resubscribe and not (reason or "").strip():
        raise click.UsageError("--resubscribe needs --reason (it is kept in the subscriber's history)")
    emails = _validated(emails, new=True)
    with _open(ctx) as store:
        for email in emails:
            before = store.get(email)
            sub = store.add(email, list_name=list_name, name=name, resubscribe=resubscribe,
                            reason="resubscribe" if resubscribe else "cli", detail=reason)
            if before is None:
                click.echo(f"added {sub.email} ({sub.status.value}, list {list_name})")
            elif sub.email is None:
                click.echo(f"{email}: forgotten earlier, stays suppressed (use --resubscribe --reason to re-add)")
            elif sub.status.suppressed:
                click.echo(f"{sub.email}: {sub.status.value}, kept suppressed (use --resubscribe --reason to re-add)")
            else:
                changed = "" if before.status is sub.status else f" (was {before.status.value})"
                click.echo(f"{sub.email}: {sub.status.value}{changed}, on list {list_name}")


def _existing(store, emails):
    found = []
    for email in emails:
        sub = store.get(email)
        if sub is None or sub.email is None:
            raise SubscriberError(f"not a subscriber: {email}", address=email)
        found.append(sub)
    return found


@subscribers.command()
@click.argument("emails", nargs=-1, required=True)
@click.option("--reason", callback=_reason, help="Why (kept in the history).")
@pass_ctx
def remove(ctx, emails, reason) -> None:
    """Unsubscribe addresses (history is kept; they stay suppressed)."""
    emails = _validated(emails)
    with _open(ctx) as store:
        for sub in _existing(store, emails):
            if sub.status in (Status.BOUNCED, Status.COMPLAINED):
                # Already suppressed, for a reason worth keeping (deliverability reports).
                click.echo(f"{sub.email}: already suppressed ({sub.status.value})")
            elif store.set_status(sub.id, Status.UNSUBSCRIBED, reason="cli", detail=reason):
                click.echo(f"unsubscribed {sub.email}")
            else:
                click.echo(f"{sub.email}: already unsubscribed")


@subscribers.command()
@click.argument("email")
@pass_ctx
def forget(ctx, email) -> None:
    """Erase an address's personal data; a keyed hash keeps it suppressed."""
    email = _validated([email])[0]
    with _open(ctx) as store:
        if store.forget(email):
            click.echo(f"forgot {email}: personal data erased, address stays suppressed")
            if not ctx.settings.has_real_secret and not ctx.settings.address_key:
                click.echo("warning: hashed with the development secret: anyone with the source can test "
                           "whether an address was forgotten; set TWIR_MAIL_SECRET_KEY (or "
                           "TWIR_MAIL_ADDRESS_KEY) before forgetting addresses (docs/keys.md)", err=True)
            return
        if store.get(email) is None:
            raise SubscriberError(f"not a subscriber: {email}", address=email)
        click.echo(f"{email}: already forgotten")


@subscribers.command()
@pass_ctx
def rehash(ctx) -> None:
    """Re-key address hashes to the current address key (after setting TWIR_MAIL_ADDRESS_KEY)."""
    with _open(ctx) as store:
        changed, forgotten = store.rehash()
    click.echo(f"re-keyed {changed} address hashes; {forgotten} forgotten addresses keep theirs "
               "(keep their key in TWIR_MAIL_OLD_SECRET_KEYS or TWIR_MAIL_ADDRESS_KEY)")


@subscribers.command()
@click.argument("email")
@pass_ctx
def show(ctx, email) -> None:
    """Status, lists and history of one address."""
    email = _validated([email])[0]
    with _open(ctx) as store:
        sub = store.get(email)
        if sub is None:
            raise SubscriberError(f"not a subscriber: {email}", address=email)
        click.echo(f"email:   {sub.email or '(forgotten)'}")
        click.echo(f"name:    {sub.name or ''}")
        click.echo(f"status:  {sub.status.value}")
        click.echo(f"source:  {sub.source}")
        click.echo(f"since:   {sub.created_at:%Y-%m-%d %H:%M:%S} UTC")
        click.echo(f"lists:   {', '.join(store.lists_of(sub.id)) or '(none)'}")
        click.echo("history:")
        for h in store.history(sub.id):
            old = h.old_status.value if h.old_status else "new"
            detail = f" ({h.detail})" if h.detail else ""
            click.echo(f"  {h.at:%Y-%m-%d %H:%M:%S}  {old} -> {h.new_status.value}  [{h.reason}]{detail}")


@subscribers.command()
@click.option("--list", "list_name", help="Only this list.")
@pass_ctx
def count(ctx, list_name) -> None:
    """Number of subscribers per status (forgotten addresses apart: see the last line)."""
    with _open(ctx) as store:
        counts = store.count(list_name)
        forgotten = store.forgotten_count()
    for status, n in counts.items():
        click.echo(f"{status:<13}{n:>10}")
    click.echo(f"{'total':<13}{sum(counts.values()):>10}")
    scope = "in the whole database, on no list" if list_name else "not in the total"
    click.echo(f"{'forgotten':<13}{forgotten:>10}  ({scope}: erased by `subscribers forget`, "
               "kept only as a keyed hash so they stay suppressed)")


@subscribers.command("list")
@click.option("--list", "list_name", help="Only this list.")
@click.option("--status", type=STATUSES, help="Only this status.")
@pass_ctx
def list_(ctx, list_name, status) -> None:
    """Print `email<TAB>status<TAB>name`, one subscriber a line (streams)."""
    with _open(ctx) as store:
        for sub in store.iter_subscribers(list_name, status):
            name = " ".join((sub.name or "").split())  # a tab or newline in a name must not break the columns
            sys.stdout.write(f"{sub.email}\t{sub.status.value}\t{name}\n")


@subscribers.command()
@click.option("--list", "list_name", help="Only this list.")
@click.option("--status", type=STATUSES, help="Only this status.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout).")
@pass_ctx
def export(ctx, list_name, status, output) -> None:
    """CSV of subscribers (re-importable with `subscribers import`); streams."""
    with _open(ctx) as store:
        if list_name:
            store.list_id(list_name)  # an unknown list is an error before the CSV header is on stdout
        rows = store.iter_subscribers(list_name, status)
        if not output:
            _write_csv(sys.stdout, rows)
            return
        n = _export_to(Path(output), rows)
    click.echo(f"exported {n} subscribers to {output}", err=True)


def _export_to(target: Path, rows) -> int:
    try:  # never a half-written export; private: it is a list of people's addresses
        with atomic_open(target, "w", encoding="utf-8", newline="", private=True) as fh:
            return _write_csv(fh, rows)
    except OSError as exc:
        raise TwirMailError(f"cannot write export: {exc.strerror}", path=target) from None


def _write_csv(fh, rows) -> int:
    from mailer.store.addresses import neutralise_formula

    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for sub in rows:
        # A spreadsheet must not run `=cmd|...@x.org` or a name like `+SUM(...)` (docs/subscribers.md).
        writer.writerow([neutralise_formula(sub.email), neutralise_formula(sub.name or ""), sub.status.value,
                         neutralise_formula(sub.source), sub.created_at.isoformat(), sub.updated_at.isoformat()])
        n += 1
    return n


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--list", "list_name", default="main", show_default=True, help="List to add to.")
@click.option("--format", "fmt", type=click.Choice(["csv", "mailchimp"]),
              help="Default: detected (zip or subscribed_/unsubscribed_/cleaned_*.csv = mailchimp).")
@pass_ctx
def import_(ctx, file, list_name, fmt) -> None:
    """Import a CSV with an `email` column, or a Mailchimp audience export (zip or CSVs).

    Bad rows are reported as `file:line: reason` and skipped. Addresses that left
    (here or in Mailchimp) are never re-subscribed. Safe to run again.
    """
    from mailer.store.importer import import_file

    with _open(ctx) as store:
        report = import_file(store, file, list_name=list_name, fmt=fmt,
                             on_bad=lambda message: click.echo(message, err=True))
    click.echo(report.summary())
