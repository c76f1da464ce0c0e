"""Campaigns: one issue to one list, recorded in a delivery ledger, paced and resumable.

The store keeps the bookkeeping (``Store.create_campaign``, ``ledger_step``... in
mailer/store/ledger.py), ``sender`` runs the threaded send loop; this module glues
them for the CLI.
"""

from __future__ import annotations

import itertools
import time

from mailer.config import Settings
from mailer.errors import CampaignError
from mailer.models import Campaign, CampaignKind, CampaignStatus, DeliveryStatus as DS, Rendered, Status
from mailer.sending.campaign.guard import Guard
from mailer.sending.campaign.sender import Progress, Report, Sender
from mailer.sending.message import SAMPLE_TOKEN, subject_prefix, template_for
from mailer.sending.transport import Transport, check_sendable
from mailer.store import Store
from mailer.store.addresses import only_new
from mailer.store.engine import utcnow
from mailer.tokens import Signer

__all__ = ["Campaign", "Progress", "Report", "start", "resume", "deliver", "dry_run",
           "resolve_rate", "subject_prefix", "SMTP_DEFAULT_RATE"]

# SES's sandbox rate: a safe default for SMTP relays that cannot tell us theirs.
SMTP_DEFAULT_RATE = 14.0


def resolve_rate(settings: Settings, transport: Transport, cli_rate: float | None) -> float | None:
    """--rate, else [ses] rate, else the account's MaxSendRate; None = unpaced (local outbox)."""
    if cli_rate:
        return cli_rate
    if transport.local:
        return None
    if settings.ses.rate:
        return settings.ses.rate
    return transport.account_rate() or SMTP_DEFAULT_RATE


def start(store: Store, rendered: Rendered, settings: Settings, transport: Transport, *, list_name: str | None,
          addresses: list[str] = (), test: bool = False) -> Campaign:
    """A new campaign with its recipients frozen; a second real send of an issue to a list is refused."""
    if not transport.local:
        check_sendable(settings)
    # Build first, record after: an issue or address that cannot become a message must not
    # leave a campaign `sending` with every row queued.
    template = template_for(rendered, settings, test, list_name=list_name)
    template.sample()
    for address in addresses:
        template.build(address, SAMPLE_TOKEN)
    return store.create_campaign(kind=CampaignKind.TEST if test else CampaignKind.SEND,
                                 issue_number=rendered.issue.number, issue_path=str(rendered.issue.path.resolve()),
                                 list_name=list_name, subject=subject_prefix(settings, test) + rendered.subject,
                                 transport=transport.name, html_bytes=rendered.html_bytes, addresses=list(addresses))


def resume(store: Store, campaign_id: int | None, *, issue_number: int | None = None, list_name: str = "main",
           resend_unknown: bool = False) -> tuple[Campaign, int]:
    """The campaign to continue (by id, or the unfinished one of an issue and list) and how many
    unknown rows were requeued."""
    if campaign_id is None:
        if issue_number is None:
            raise CampaignError("--resume needs a campaign id or an issue")
        found = store.find_send_campaign(issue_number, store.list_id(list_name))
        if found is None:
            raise CampaignError(f"issue {issue_number} has no campaign on list {list_name!r} to resume")
        campaign_id = found.id
    campaign = store.campaign(campaign_id)
    counts = store.delivery_counts(campaign_id)
    unknown = counts[DS.SENDING.value]
    if campaign.status is CampaignStatus.DONE and not (resend_unknown and unknown):
        raise CampaignError(f"campaign {campaign_id} is complete ({counts[DS.SENT.value]} sent"
                            + (f", {unknown} unknown: add --resend-unknown to send those again)" if unknown else ")"))
    requeued = store.requeue_unknown(campaign_id) if resend_unknown else 0
    # The status turns back to `sending` in deliver(): a resume that stops at the check or the
    # transport's pre-flight leaves the campaign `paused`.
    return store.campaign(campaign_id), requeued


def _members(store: Store, list_name: str | None):
    if not list_name:
        return ()
    return (sub for sub in store.iter_subscribers(list_name, Status.SUBSCRIBED) if sub.email)


def recipient_count(store: Store, list_name: str | None, addresses: list[str] = ()) -> int:
    """How many messages a send makes: the list's subscribed members plus the typed addresses
    that are not among them (nor typed twice), exactly as ``start`` freezes them."""
    if not addresses:
        return store.count(list_name)["subscribed"] if list_name else 0
    emails = [sub.email for sub in _members(store, list_name)]  # a test send: the small preview list
    return len(emails) + len(only_new(addresses, emails))


def deliver(store: Store, campaign: Campaign, rendered: Rendered, transport: Transport, settings: Settings, *,
            rate: float | None, workers: int | None = None, on_progress=None, guard: bool = True) -> Report:
    """Send every queued row of ``campaign``; returns when done, paused or interrupted.

    ``guard``: pause when this run's hard-bounce or complaint rate passes ``[guard]``'s limits.
    """
    if not transport.local:
        check_sendable(settings)
    if rendered.issue.number != campaign.issue_number:
        raise CampaignError(f"campaign {campaign.id} is for issue {campaign.issue_number}, "
                            f"not {rendered.issue.number}")
    template = template_for(rendered, settings, campaign.kind is CampaignKind.TEST, campaign)
    if campaign.status is not CampaignStatus.SENDING:
        store.set_campaign_status(campaign.id, CampaignStatus.SENDING)
    watch = Guard(store, campaign.id, settings.guard, since=utcnow()) if guard else None
    sender = Sender(store, campaign, template, transport, settings, rate=rate, workers=workers,
                    on_progress=on_progress, guard=watch)
    return sender.run()


def dry_run(store: Store, rendered: Rendered, settings: Settings, list_name: str | None,
            addresses: list[str] = (), test: bool = False) -> tuple[int, int, float]:
    """Build every message of a send (list members and/or test addresses) without recording or
    handing anything over. Returns (messages, total bytes, seconds)."""
    template = template_for(rendered, settings, test, list_name=list_name)
    signer = Signer.from_settings(settings)
    list_id = store.list_id(list_name) if list_name else 0
    started, n, size = time.monotonic(), 0, 0
    members = ((sub.email, sub.id) for sub in _members(store, list_name))  # a whole list streams
    extra = []
    if addresses:  # a test send: the small preview list, held to leave out typed members
        members = list(members)
        extra = only_new(addresses, (email for email, _ in members))
    recipients = itertools.chain(members, ((a, 0) for a in extra))
    for email, sub_id in recipients:
        size += len(template.build(email, signer.unsubscribe_token(sub_id, list_id)))
        n += 1
    return n, size, time.monotonic() - started
