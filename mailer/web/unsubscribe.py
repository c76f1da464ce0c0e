"""One-click unsubscribe (RFC 8058) and the unsubscribe page.

GET only shows a page (mail scanners prefetch links). Any POST with a valid
token unsubscribes: the RFC 8058 body ``List-Unsubscribe=One-Click`` (either
encoding) as well as the page's button, which posts the same field. We do not
refuse a POST whose body lacks it: the signed token is the authorisation, and
failing to honour a genuine unsubscribe is the worse error.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mailer.models import Status
from mailer.tokens import UNSUBSCRIBE
from mailer.web import subscribe
from mailer.web.context import Services, drain

REASON = "unsubscribe-link"


def _state(svc: Services, subscriber_id: int) -> bool:
    """True when the subscriber no longer gets mail (or no longer exists)."""
    sub = svc.store.get_by_id(subscriber_id)
    return sub is None or sub.email is None or sub.status.suppressed


def _detail(svc: Services, list_id: int) -> str | None:
    # The history is read by people: a list's name, not its id (cached, like the title).
    name = svc.list_name(list_id)
    return name and f"list {name}"


def do_unsubscribe(svc: Services, subscriber_id: int, list_id: int) -> str:
    """Unsubscribe (if still receiving mail), in a worker thread; returns the list title for the page."""
    # One transaction: already suppressed (bounced, complained, unsubscribed) or forgotten
    # subscribers match no row and keep their status.
    svc.store.suppress(subscriber_id, Status.UNSUBSCRIBED, reason=REASON, detail=_detail(svc, list_id))
    return svc.list_title(list_id)


def _view(svc: Services, subscriber_id: int, list_id: int) -> tuple[bool, str]:
    return _state(svc, subscriber_id), svc.list_title(list_id)


def _urls(svc: Services, token: str) -> dict:
    return {"action": f"/unsubscribe/{token}", "resubscribe_action": f"/unsubscribe/{token}/resubscribe"}


async def show(request: Request):
    svc: Services = request.app.state.services
    token = request.path_params["token"]
    data = svc.check_token(token, UNSUBSCRIBE)
    if data is None:
        return svc.invalid_link()
    suppressed, title = await svc.run_db(_view, svc, data.subscriber_id, data.list_id)
    return svc.pages.page("unsubscribe.html", list_title=title, suppressed=suppressed, **_urls(svc, token))


async def one_click(request: Request):
    svc: Services = request.app.state.services
    token = request.path_params["token"]
    data = svc.check_token(token, UNSUBSCRIBE)
    await drain(request)
    if data is None:
        return svc.invalid_link()
    # The write runs on the event loop, not in a worker thread: on this, the busiest path,
    # the hop cost more than the write (see mailer/store/loopwriter.py).
    await svc.load_list(data.list_id)
    writer = await svc.loop_writer()
    done = await writer.suppress(data.subscriber_id, Status.UNSUBSCRIBED, reason=REASON,
                                 detail=_detail(svc, data.list_id))
    if done is None:  # SQLite, and another writer holds the lock: wait for it in a thread
        await svc.run_db(do_unsubscribe, svc, data.subscriber_id, data.list_id)
    return svc.pages.page("unsubscribed.html", list_title=svc.list_title(data.list_id), **_urls(svc, token))


def _resubscribe(svc: Services, subscriber_id: int, list_id: int, client: str) -> subscribe.Outcome:
    sub = svc.store.get_by_id(subscriber_id)
    if sub is None or sub.email is None:
        return subscribe.Answer.SENT, None  # forgotten: say the same as always, send nothing
    if sub.status is Status.SUBSCRIBED:
        return subscribe.Answer.SENT, None
    return subscribe.request_confirmation(svc, sub, list_id, client)


async def resubscribe(request: Request):
    svc: Services = request.app.state.services
    data = svc.check_token(request.path_params["token"], UNSUBSCRIBE)
    await drain(request)
    if data is None:
        return svc.invalid_link()
    outcome = await run_in_threadpool(_resubscribe, svc, data.subscriber_id, data.list_id,
                                      subscribe.client_of(request))
    return subscribe.answer(svc, outcome)
