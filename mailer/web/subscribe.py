"""Double opt-in: the subscribe form, the confirmation mail, and the confirm link.

The answer to ``POST /subscribe`` is the same whether the address is new,
pending, subscribed or suppressed, and whether a mail was sent. Requests are
limited per address (so the form cannot mail-bomb someone) and per client.
A suppressed address comes back only by confirming from its own mailbox.
The confirmation is mailed after the answer has gone out, so the time the
transport takes does not tell which addresses got a mail (i.e. which are
already subscribed). On Lambda, Mangum returns only once it is sent.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import logging
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.requests import Request

from mailer.errors import SubscriberError, TransportError
from mailer.models import Status, Subscriber
from mailer.sending.message import MimeMessage
from mailer.tokens import CONFIRM
from mailer.web.context import CONFIRM_MAX_AGE, Services, drain, read_body

log = logging.getLogger("twir_mail.web")
MAX_FORM = 16 * 1024
HONEYPOT = "website"
WINDOW = dt.timedelta(hours=1)


def client_of(request: Request) -> str:
    """The rate-limit key of the client: its IPv4 address, or its IPv6 /64.

    One IPv6 user (a home line, a cloud VM) holds a whole /64; limiting each of
    its 2**64 addresses separately would be no limit at all.
    """
    host = request.client.host if request.client else "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(getattr(ip, "ipv4_mapped", None) or ip)


class Answer(enum.Enum):
    """What ``POST /subscribe`` (or a re-subscribe) answers."""

    SENT = "sent"  # "check your inbox": the same page whether or not a mail goes out
    LIMITED = "limited"  # this client asked too often: 429
    INVALID = "invalid"  # not an address: the form again, with the reason
    UNUSABLE = "unusable"  # an address we could never deliver to or safely export: the form, with why


Outcome = tuple[Answer, "tuple[Subscriber, int] | None"]  # (what to answer, whom to mail on which list)


def answer(svc: Services, outcome: Outcome):
    kind, mail = outcome
    if kind is Answer.LIMITED:
        return svc.pages.message("Too many requests", "Please try again in an hour.", status=429)
    page = svc.pages.message(
        "Check your inbox",
        "If this address can receive email, we have sent it a link to confirm the subscription.",
        "The link works for 7 days. Nothing changes until you use it.",
    )
    if mail is not None:
        page.background = BackgroundTask(send_confirmation, svc, *mail)
    return page


def send_confirmation(svc: Services, sub: Subscriber, list_id: int) -> None:
    """Mail a confirmation link through the configured transport (failures are logged)."""
    s = svc.settings
    url = f"{svc.base_url}/confirm/{svc.signer.confirm_token(sub.id, list_id)}"
    ctx = {"list_title": svc.list_title(list_id), "confirm_url": url}
    try:
        mail = MimeMessage(from_=s.newsletter.from_, subject=f"Confirm your subscription to {s.newsletter.name}",
                           text=svc.pages.text("confirm_email.txt", **ctx),
                           html=svc.pages.text("confirm_email.html", **ctx))
        # RFC 3834: this answers a request; it is not a newsletter.
        raw = mail.build(sub.email, extra_headers={"Auto-Submitted": "auto-replied"})
        svc.transport.send(raw, sender=mail.sender, recipient=sub.email, tags={"kind": "confirm"})
    except TransportError as exc:
        # Same answer either way: the page must not tell which addresses got mail.
        log.warning("confirmation mail to subscriber %s not sent: %s", sub.id, exc)
    except Exception:  # noqa: BLE001 - runs after the answer: nobody else would see it
        log.exception("confirmation mail to subscriber %s not sent", sub.id)


def request_confirmation(svc: Services, sub: Subscriber, list_id: int, client: str) -> Outcome:
    """Rate-limit, then (after answering) mail a confirmation link to an existing subscriber."""
    limited = _limit(svc, sub.email_norm, client)
    return (Answer.SENT, (sub, list_id)) if limited is None else (limited, None)


def _limit(svc: Services, norm: str, client: str) -> Answer | None:
    """None if a mail may go out; else the answer to give (the address limits are silent: SENT).

    Per address, the long window keeps the confirmation mail's promise: "if you did not ask
    for this, ignore this message: ... we will not write again"."""
    web = svc.settings.web
    digest = svc.store.email_hash(norm)
    client_key = f"sub-client:{client}"[:100]
    rules = {client_key: (web.subscribe_rate_per_hour, WINDOW),
             f"sub-addr:{digest}": (web.subscribe_rate_per_hour, WINDOW),
             f"sub-addr-long:{digest}"[:100]: (web.confirmations_per_address,
                                               dt.timedelta(days=web.confirmation_window_days))}
    svc.prune_if_due()
    full = svc.store.rate_hit(rules)
    if client_key in full:
        return Answer.LIMITED
    return Answer.SENT if full else None


def _subscribe(svc: Services, email: str, honeypot: str, client: str) -> Outcome:
    from mailer.store.addresses import formula_leading, normalize, undeliverable

    try:
        display, norm = normalize(email)
    except SubscriberError:
        return Answer.INVALID, None
    if undeliverable(display) or formula_leading(display):
        return Answer.UNUSABLE, None
    if honeypot:
        return Answer.SENT, None  # a bot: same page, nothing stored or sent
    limited = _limit(svc, norm, client)
    if limited is not None:
        return limited, None
    store = svc.store
    sub = store.get(norm)
    if sub is None:
        try:
            sub = store.add(display, list_name="main", source="web", status=Status.PENDING,
                            reason="subscribe-form")
        except SubscriberError:
            return Answer.SENT, None  # e.g. a forgotten address the store keeps suppressed
    if sub.status is Status.SUBSCRIBED or sub.email is None:
        return Answer.SENT, None
    return Answer.SENT, (sub, store.list_id("main"))


async def read_form(request: Request) -> dict[str, str] | None:
    """The form fields (urlencoded or multipart), or None if too big or unparsable."""
    body = await read_body(request, MAX_FORM)
    if body is None:
        return None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        request._body = body  # let Starlette's parser read the bytes we already have
        try:
            form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM)
        except Exception:  # malformed multipart of any kind
            return None
        fields: dict[str, str] = {}
        for k, v in form.multi_items():  # a repeated field: its first value, as parse_qs below
            if isinstance(v, str):
                fields.setdefault(k, v)
        return fields
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=20, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in fields.items()}


async def form_page(request: Request):
    svc: Services = request.app.state.services
    return svc.pages.page("subscribe.html", action="/subscribe", error="")


async def submit(request: Request):
    svc: Services = request.app.state.services
    form = await read_form(request)
    email = (form or {}).get("email", "")
    if form is None or not email.strip() or len(email) > 320:
        return svc.pages.page("subscribe.html", status=400, action="/subscribe",
                              error="Please enter a valid email address.")
    outcome = await run_in_threadpool(_subscribe, svc, email.strip(), form.get(HONEYPOT, ""), client_of(request))
    if outcome[0] is Answer.INVALID:
        return svc.pages.page("subscribe.html", status=400, action="/subscribe",
                              error="That does not look like an email address.")
    if outcome[0] is Answer.UNUSABLE:
        return svc.pages.page("subscribe.html", status=400, action="/subscribe", error=(
            "We cannot send to this address: our mail service accepts only plain ASCII letters before the @, "
            "and not =, +, - or @ as the first character. Please use another address."))
    return answer(svc, outcome)


def _confirm(svc: Services, subscriber_id: int, list_id: int, issued_at: float, version: int = 2) -> bool:
    sub = svc.store.get_by_id(subscriber_id)
    if sub is None or sub.email is None:
        return False
    # An unsubscribe, bounce or complaint after the link was mailed outranks it: an old
    # confirmation link must not undo a later "stop". Tokens carry microseconds (exact order);
    # links mailed before that carry whole seconds: those keep the second of slack they had.
    slack = 0.0 if version >= 2 else 1.0
    if sub.status.suppressed and sub.updated_at.timestamp() > issued_at + slack:
        return False
    svc.store.join_list(list_id, sub.id)  # False if the list is gone: the subscription still counts
    if sub.status is not Status.SUBSCRIBED:
        svc.store.set_status(sub.id, Status.SUBSCRIBED, reason="confirm-link", allow_resubscribe=True)
    return True


async def confirm_show(request: Request):
    svc: Services = request.app.state.services
    token = request.path_params["token"]
    data = svc.check_token(token, CONFIRM, max_age=CONFIRM_MAX_AGE)
    if data is None:
        return svc.invalid_link()
    title = await svc.run_db(svc.list_title, data.list_id)
    return svc.pages.page("confirm.html", list_title=title, action=f"/confirm/{token}")


async def confirm_post(request: Request):
    svc: Services = request.app.state.services
    data = svc.check_token(request.path_params["token"], CONFIRM, max_age=CONFIRM_MAX_AGE)
    await drain(request)
    if data is None or not await svc.run_db(_confirm, svc, data.subscriber_id, data.list_id, data.issued_at,
                                                       data.version):
        return svc.invalid_link()
    title = await svc.run_db(svc.list_title, data.list_id)
    return svc.pages.message("You are subscribed", f"Welcome to {title}! The next issue will be in your inbox.")
