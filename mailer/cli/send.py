"""CLI commands: send (real and test sends, resume) and campaigns (list, show)."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.cli import pass_ctx
from mailer.errors import CampaignError, CheckFailed, Interrupted, SendingPaused, TransportError


# Exit code of a send the user declined at "send it?" (nothing recorded, nothing sent).
EXIT_NOT_SENT = 4


class _Rate(click.FloatRange):
    """Messages per second: click's FloatRange lets nan through (every comparison with it is
    false), and inf would be no pace at all while the summary promised one."""

    def convert(self, value, param, ctx):
        import math

        rate = super().convert(value, param, ctx)
        if not math.isfinite(rate):
            self.fail(f"{value!r} is not a number of messages per second", param, ctx)
        return rate


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _render(path: str, settings, force: bool, test: bool = False):
    """Parse, check (errors stop a real send unless --force; a test send goes on, so an
    editor can read a draft in their own inbox) and render one issue."""
    from mailer.issue.parse import parse_issue
    from mailer.issue.render import render_issue
    from mailer.models import Severity
    from mailer.sending.preflight import check_message

    issue = parse_issue(path)  # unreadable/unparsable: one IssueError line
    findings, rendered = check_message(issue, settings, test=test)
    errors = [f for f in findings if f.severity == Severity.ERROR]
    for f in errors:
        click.echo(str(f), err=True)
    if len(findings) > len(errors):
        click.echo(f"{len(findings) - len(errors)} warning(s): see `twir-mail check {path}`", err=True)
    if errors and not (force or test):
        raise CheckFailed(f"{len(errors)} error(s) in the issue: fix them or send with --force", path=path)
    if errors and test:
        click.echo(f"test send despite {len(errors)} error(s); a real send refuses them", err=True)
    # Forced past a render failure: rendering again raises its one-line error.
    return rendered if rendered is not None else render_issue(issue, settings)


def _split_to(to: tuple[str, ...], preview_list: str) -> tuple[str | None, list[str]]:
    """``--to`` values: the preview list and/or addresses (each once, first spelling kept)."""
    import difflib

    from mailer.store.addresses import normalize

    list_name, addresses = None, {}
    for value in to:
        if value == "preview":
            list_name = preview_list
        elif "@" not in value and difflib.get_close_matches(value.lower(), ["preview"], n=1, cutoff=0.6):
            raise click.BadParameter(f"{value!r} is not an address: did you mean `--to preview`?",
                                     param_hint="--to")
        else:  # anything else must be an address (one line naming it if not)
            addresses.setdefault(normalize(value)[1], normalize(value)[0])
    return list_name, list(addresses.values())


def _recipients(store, settings, list_name: str, to: tuple[str, ...]) -> tuple[str | None, list[str], int]:
    """Check --list/--to against the store before any rendering: (list, addresses, distinct recipients)."""
    from mailer.sending import campaign as cmp

    target, addresses = _split_to(to, settings.send.preview_list) if to else (list_name, [])
    if target:
        store.list_id(target)  # an unknown list: one line naming the lists there are
    n = cmp.recipient_count(store, target, addresses)
    if n == 0 and to:
        raise CampaignError(f"the {target} list has no subscribed addresses: add yours with "
                            f"`twir-mail subscribers add ADDR --list {target}` (in a new folder, "
                            "`twir-mail init --preview-address ADDR`), or test-send with `--to ADDR`")
    if n == 0:
        raise CampaignError(f"no subscribed recipients on list {target!r}")
    return target, addresses, n


def _resume_id(resume: str | None, issue: str | None) -> tuple[int | None, str | None]:
    """``--resume`` takes an optional id; ``--resume FILE`` means the file is the ISSUE."""
    if resume in (None, ""):
        return None, issue
    if resume.isdigit():
        return int(resume), issue
    if issue is None:
        return None, resume
    raise click.BadParameter(f"{resume!r} is not a campaign id", param_hint="--resume")


def _progress_bar(total: int, done: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]sending"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("sent {task.fields[sent]} failed {task.fields[failed]} "
                              "skipped {task.fields[skipped]} {task.fields[rate]:.1f}/s"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=False)
    task = bar.add_task("send", total=total, completed=done, sent=0, failed=0, skipped=0, rate=0.0)

    def update(p):
        bar.update(task, completed=p.finished, sent=p.sent, failed=p.failed, skipped=p.skipped, rate=p.rate)

    return bar, update


def _report(report) -> None:
    c, p = report.counts, report.progress
    click.echo(f"campaign {report.campaign.id} ({report.campaign.kind.value}, issue {report.campaign.issue_number}): "
               f"{report.status.value}")
    click.echo(f"  this run: sent {p.sent}, failed {p.failed}, skipped {p.skipped}, retries {p.retries}, "
               f"{_duration(p.elapsed)}, {p.rate:.1f} messages/s")
    click.echo(f"  in total: sent {c['sent']}, failed {c['failed']}, skipped {c['skipped']}, "
               f"unknown {c['sending']}, queued {c['queued']}")
    if c["sending"]:
        click.echo(f"  {c['sending']} unknown: a run was killed while sending to them; they may or may not have "
                   f"got the message (`twir-mail send --resume {report.campaign.id} --resend-unknown` "
                   "sends them again)")


def _send(ctx, issue, list_name, yes, dry_run, rate, force, resume, resend_unknown, to, live=None):
    from mailer.sending import campaign as cmp
    from mailer.sending.transport import check_sendable, open_transport, sendable_warnings

    settings = ctx.settings
    campaign_id, issue = _resume_id(resume, issue)
    resuming = resume is not None
    if issue is None and campaign_id is None:
        raise click.UsageError("give an ISSUE file, or --resume CAMPAIGN_ID")
    if resuming and (to or dry_run):
        raise click.UsageError("--resume cannot be combined with --to or --dry-run")
    if resend_unknown and not resuming:  # else a plain send went ahead, the flag ignored
        raise click.UsageError("--resend-unknown goes with --resume")
    with ctx.store() as store:
        if resuming:
            found, requeued = _prepare_resume(store, campaign_id, issue, list_name, resend_unknown)
            if requeued:
                click.echo(f"requeued {requeued} unknown recipient(s) (--resend-unknown)")
            issue = issue or found.issue_path
        else:
            test = bool(to)
            target, addresses, n = _recipients(store, settings, list_name, to)
        rendered = _render(issue, settings, force, test=bool(to))
        # The real transport even for --dry-run: its settings are checked and the rate resolved
        # exactly as for the send; only the hand-over is skipped.
        transport = open_transport(settings)
        try:
            check_sendable(settings)
            for warning in sendable_warnings(settings):
                click.echo(f"warning: {warning}", err=True)
            _preflight(transport)
            if resuming:
                _wait_live(live, rendered, settings)
                campaign = found
                if rendered.html_bytes != campaign.html_bytes:
                    click.echo(f"warning: {issue} renders to {rendered.html_bytes} bytes of HTML now, "
                               f"{campaign.html_bytes} when the campaign started", err=True)
            else:
                if not test:
                    store.refuse_second_send(rendered.issue.number, list_name)
                send_rate = _rate(settings, transport, rate)
                _summary(rendered, settings, target, addresses, n, transport, send_rate, test)
                if dry_run:
                    return _dry_run(store, rendered, settings, target, addresses, test)
                if not (yes or test or _confirmed()):
                    click.echo("not sent", err=True)
                    return EXIT_NOT_SENT
                _wait_live(live, rendered, settings)
                campaign = cmp.start(store, rendered, settings, transport, list_name=target,
                                     addresses=addresses, test=test)
                rate = send_rate
            if resuming:
                rate = _rate(settings, transport, rate)
            counts = store.delivery_counts(campaign.id)
            bar, update = _progress_bar(sum(counts.values()), sum(counts.values()) - counts["queued"])
            ctx.note_unconfigured(outbox=True)  # only now is a message about to be written
            with _feedback_poller(store, settings) as poller, bar:
                report = cmp.deliver(store, campaign, rendered, transport, settings, rate=rate, on_progress=update)
        finally:
            transport.close()
    _report(report)
    _poller_report(poller)
    resume_cmd = f"twir-mail send --resume {report.campaign.id}"
    if report.interrupted:
        raise Interrupted(f"stopped; state saved. Continue with `{resume_cmd}`")
    if report.reason:
        raise SendingPaused(f"campaign {report.campaign.id} paused: {report.reason}. "
                            f"Fix the cause, then `{resume_cmd}`")
    return 0


def _confirmed() -> bool:
    try:
        return click.confirm("send it?", err=True)
    except click.Abort:  # Ctrl-C or end of input at the question: a no
        click.echo("", err=True)
        return False


def _preflight(transport) -> None:
    """Credentials, endpoint and the account's own state, tried before a campaign is recorded or resumed."""
    from mailer.sending.campaign.guard import account_gate

    if transport.local:
        return
    try:
        transport.check()
        warning = account_gate(transport)
    except TransportError as exc:
        raise _not_ready(transport, exc) from None
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _wait_live(live, rendered, settings) -> None:
    """--when-live: wait until the issue's web page answers 200 (nothing is recorded before)."""
    from mailer.sending.live import wait_until_live

    if live is None:
        return
    url, timeout = live
    url = url or rendered.web_url

    def said(attempt):
        if attempt.status == 200:
            click.echo(f"{url} is live", err=True)
        else:
            click.echo(f"{url}: {attempt.detail}; next look in {attempt.waited:.0f}s", err=True)

    wait_until_live(url, timeout=timeout, interval=settings.send.live_poll_seconds, on_attempt=said)


class _NoPoller:
    total = None
    errors: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def _feedback_poller(store, settings):
    """With [feedback] queue_url: apply queued SES feedback while sending, so the guard sees it."""
    if not settings.feedback.queue_url:
        return _NoPoller()
    from mailer.feedback.queue import BackgroundPoller, FeedbackQueue

    return BackgroundPoller(FeedbackQueue(store, settings))


def _poller_report(poller) -> None:
    if poller.total is not None:
        t = poller.total
        click.echo(f"  feedback queue: applied {t.events} event(s) from {t.applied} message(s) during the send"
                   + (f", {len(t.bad)} unparsable left on the queue" if t.bad else ""))
    for error in poller.errors[-3:]:
        click.echo(f"warning: feedback queue: {error}", err=True)


def _rate(settings, transport, cli_rate):
    from mailer.sending import campaign as cmp

    try:
        return cmp.resolve_rate(settings, transport, cli_rate)
    except TransportError as exc:
        raise _not_ready(transport, exc) from None


def _not_ready(transport, exc) -> TransportError:
    # Exit 1, not "paused" (3): no campaign was touched.
    return TransportError(f"cannot send through {transport.name}: {exc.message}", code=exc.code)


def _prepare_resume(store, campaign_id, issue, list_name, resend_unknown):
    from mailer.sending import campaign as cmp
    from mailer.issue.parse import parse_issue

    number = parse_issue(Path(issue).resolve()).number if (campaign_id is None and issue) else None
    found, requeued = cmp.resume(store, campaign_id, issue_number=number, list_name=list_name,
                                 resend_unknown=resend_unknown)
    return found, requeued


def _summary(rendered, settings, target, addresses, n, transport, rate, test) -> None:
    from mailer.sending import campaign as cmp

    to = ", ".join(filter(None, [f"list {target}" if target else None, *addresses]))
    subject = cmp.subject_prefix(settings, test) + rendered.subject
    click.echo(f"subject:    {subject}")
    click.echo(f"to:         {to} ({n} recipient{'s' if n != 1 else ''})")
    click.echo(f"HTML size:  {_kib(rendered.html_bytes)}")
    click.echo(f"transport:  {transport.name}")
    click.echo(f"rate:       {f'{rate:g} messages/s' if rate else 'unpaced'}")
    if rate:
        click.echo(f"duration:   about {_duration(n / rate)}")


def _dry_run(store, rendered, settings, list_name, addresses, test) -> int:
    from mailer.sending import campaign as cmp

    n, size, seconds = cmp.dry_run(store, rendered, settings, list_name, addresses, test)
    click.echo(f"dry run: built {n} message(s) ({_kib(size / max(n, 1))} each, {seconds:.2f}s); "
               "nothing was sent or recorded")
    return 0


@click.command("send")
@click.argument("issue", required=False)
@click.option("--list", "list_name", default="main", show_default=True, help="List to send to.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Render, check and build every message, but send nothing.")
@click.option("--rate", type=_Rate(min=0.01), help="Messages per second (default: [ses] rate, "
              "else the SES account's MaxSendRate). Per process.")
@click.option("--force", is_flag=True, help="Send even if `check` finds errors.")
@click.option("--resume", is_flag=False, flag_value="", default=None, metavar="[ID]",
              help="Continue an interrupted or paused campaign (by id, or this ISSUE's on --list).")
@click.option("--resend-unknown", is_flag=True,
              help="With --resume: also resend recipients a killed run may or may not have reached.")
@click.option("--to", "to", multiple=True, metavar="preview|ADDRESS",
              help="Test send (subject prefixed [TEST]) to the preview list and/or addresses; repeatable.")
@click.option("--when-live", is_flag=True, help="Wait until the issue's web page answers 200, then send.")
@click.option("--timeout", "live_timeout", default="2h", show_default=True, metavar="DURATION",
              help="With --when-live: give up (sending nothing) after this long, e.g. 2h, 90m.")
@click.option("--live-url", metavar="URL", help="With --when-live: the page to wait for (default: the issue's "
              "web link, {newsletter.site_url}/blog/YYYY/MM/DD/this-week-in-rust-N/).")
@pass_ctx
def send_cmd(ctx, issue, list_name, yes, dry_run, rate, force, resume, resend_unknown, to, when_live,
             live_timeout, live_url) -> int:
    """Send ISSUE to a list: paced, recorded per recipient, resumable."""
    from mailer.sending.live import parse_duration

    live = None
    if when_live:
        try:
            live = (live_url, parse_duration(live_timeout))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--timeout") from None
    elif live_url:
        raise click.UsageError("--live-url goes with --when-live")
    return _send(ctx, issue, list_name, yes, dry_run, rate, force, resume, resend_unknown, to, live)


@click.group("campaigns", invoke_without_command=True)
@click.pass_context
def campaigns_cmd(click_ctx) -> None:
    """List campaigns with their delivery counts (`campaigns show ID` for one)."""
    if click_ctx.invoked_subcommand is not None:
        return
    with click_ctx.obj.store() as store:
        rows, counts = store.campaigns(), store.all_delivery_counts()
    if not rows:
        click.echo("no campaigns yet")
        return
    click.echo(f"{'id':>4}  {'kind':4}  {'issue':>5}  {'list':8}  {'status':7}  {'sent':>6}  {'failed':>6}  "
               f"{'skipped':>7}  {'unknown':>7}  {'queued':>6}  created")
    for c in rows:
        n = counts.get(c.id, {})
        click.echo(f"{c.id:>4}  {c.kind.value:4}  {c.issue_number:>5}  {(c.list_name or '-'):8}  {c.status.value:7}  "
                   f"{n.get('sent', 0):>6}  {n.get('failed', 0):>6}  {n.get('skipped', 0):>7}  "
                   f"{n.get('sending', 0):>7}  {n.get('queued', 0):>6}  {c.created_at:%Y-%m-%d %H:%M}")


@campaigns_cmd.command("show")
@click.argument("campaign_id", type=int)
@pass_ctx
def show_cmd(ctx, campaign_id: int) -> None:
    """Details of one campaign, with its failed and skipped recipients."""
    with ctx.store() as store:
        c = store.campaign(campaign_id)
        stats = store.campaign_stats(campaign_id)
        problems = store.delivery_failures(campaign_id, limit=200)
    n = stats.statuses
    click.echo(f"campaign {c.id}: {c.kind.value} of issue {c.issue_number} ({c.issue_path})")
    click.echo(f"  subject:   {c.subject}")
    click.echo(f"  list:      {c.list_name or '(addresses)'}")
    click.echo(f"  transport: {c.transport}, HTML {_kib(c.html_bytes)}")
    click.echo(f"  status:    {c.status.value}" + (f" ({c.pause_reason})" if c.pause_reason else ""))
    click.echo(f"  created:   {c.created_at:%Y-%m-%d %H:%M:%S %Z}"
               + (f", finished {c.finished_at:%Y-%m-%d %H:%M:%S %Z}" if c.finished_at else ""))
    click.echo(f"  sent {n['sent']}, failed {n['failed']}, skipped {n['skipped']}, unknown {n['sending']}, "
               f"queued {n['queued']}")
    for line in _feedback_lines(stats):
        click.echo(line)
    for address, status, error in problems:
        click.echo(f"  {status}: {address or '(forgotten)'}: {error or ''}")


def _feedback_lines(stats) -> list[str]:
    """What SES said about the campaign's messages, with rates over messages sent."""
    sent, fb, ev = stats.statuses["sent"], stats.feedback, stats.events

    def pct(k: int) -> str:
        return f"{k} ({k / sent:.1%})" if sent else str(k)

    bounced = fb.hard_bounces + fb.soft_bounces
    lines = [f"  delivered {pct(stats.delivered)}, bounced {pct(bounced)} (hard {pct(fb.hard_bounces)}, "
             f"soft {fb.soft_bounces}), complained {pct(fb.complaints)}, rejected {pct(ev['reject'])}, "
             f"delayed {ev['delivery-delay']} (no outcome yet)"]
    if stats.first_sent:
        span = (stats.last_sent - stats.first_sent).total_seconds()
        lines.append(f"  messages sent from {stats.first_sent:%Y-%m-%d %H:%M:%S} to {stats.last_sent:%H:%M:%S} UTC "
                     f"({_duration(span)})")
    return lines


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(send_cmd)
    cli.add_command(campaigns_cmd)
