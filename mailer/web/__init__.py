"""The public web app: unsubscribe, subscribe (double opt-in), SES feedback webhook.

``create_app(settings)`` builds a Starlette (ASGI) app; ``app_from_env()`` builds
it from the environment's settings: the factory that ``twir-mail serve``,
systemd and Docker hand to uvicorn (``uvicorn --factory mailer.web:app_from_env``)
and that AWS Lambda's adapter (``aws_lambda.handler``) wraps.
Handlers are async only to read bodies; database and transport work runs in
the thread pool, since the store is synchronous SQLAlchemy, except the one-click
write, which runs on the event loop itself (mailer/store/loopwriter.py).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match, Route

from mailer.config import Settings
from mailer.errors import StoreError, TwirMailError
from mailer.web import subscribe, unsubscribe, webhook
from mailer.web.context import Services, SlowBody
from mailer.web.startup import AccessLog, safe_path

log = logging.getLogger("twir_mail.web")


async def healthz(request: Request):
    return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})


async def index(request: Request):
    return await subscribe.form_page(request)


def _allowed(request: Request) -> str:
    """Every method the routes at this path accept, for a 405's Allow header (RFC 9110). Several
    paths have a GET route and a POST route; Starlette's own 405 names only the first one's."""
    methods: set[str] = set()
    for route in request.app.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def _slash_twin(request: Request) -> str | None:
    """The path with its trailing slash added or removed, if a route serves that one.

    Starlette's own redirect (off, see create_app) builds an absolute URL from the Host header,
    so `Host: evil.example` got `Location: http://evil.example/subscribe`, which a shared cache
    could keep for everyone; this Location is relative and names only one of our routes."""
    path = request.url.path
    twin = path[:-1] if path.endswith("/") else path + "/"
    if not twin.startswith("/") or twin.startswith("//"):
        return None  # "//host" would be a protocol-relative URL: another site
    scope = {**request.scope, "path": twin}
    if all(route.matches(scope)[0] is Match.NONE for route in request.app.routes):
        return None
    return twin + (f"?{request.url.query}" if request.url.query else "")


def _error_handlers(svc: Services) -> dict:
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 405:
            page = svc.pages.message("Not allowed", "This address does not accept that kind of request.", status=405)
            page.headers["Allow"] = _allowed(request)
            return page
        if exc.status_code == 404 and (twin := _slash_twin(request)):
            return RedirectResponse(twin, status_code=307)  # 307: a POST stays a POST
        if exc.status_code == 404:
            return svc.pages.message("Page not found", "There is nothing at this address.", status=404)
        return svc.pages.message("Bad request", "The request could not be understood.", status=exc.status_code)

    async def known_error(request: Request, exc: TwirMailError):
        # Handled inside the middleware (not re-raised, unlike an Exception handler), so the access
        # log shows the status sent (503, not 500) and the server logs no traceback for an outage.
        if isinstance(exc, StoreError):
            log.error("database unavailable: %s", exc)
            return svc.unavailable()
        # A subscriber error quotes the address: the class name is enough here.
        log.error("%s on %s %s%s", type(exc).__name__, request.method, safe_path(request.url.path),
                  "" if getattr(exc, "address", None) else f": {exc}")
        return _went_wrong()

    async def unexpected_error(request: Request, exc: Exception):
        # A bug. Never a traceback to a visitor. Starlette re-raises after this page is sent and the
        # server logs the traceback once (uvicorn: "Exception in ASGI application", Mangum: "An error
        # occurred running the application"); the access log's line before it names the path.
        return _went_wrong()

    def _went_wrong():
        return svc.pages.message("Something went wrong", "Please try again later.", status=500)

    async def client_gone(request: Request, exc: ClientDisconnect):
        # Hung up before sending the whole body (a dropped network): nobody reads this answer and
        # it is no error of ours, so no traceback; the access log's line shows nginx's 499.
        return Response(status_code=499)

    async def slow_body(request: Request, exc: SlowBody):
        page = svc.pages.message("Request timeout", "The request took too long to arrive. Please try again.",
                                 status=408)
        page.headers["Connection"] = "close"  # the rest of the body may still be on its way
        return page

    return {HTTPException: http_error, ClientDisconnect: client_gone, SlowBody: slow_body,
            TwirMailError: known_error, Exception: unexpected_error}


def create_app(settings: Settings, *, store: Any = None, transport: Any = None,
               sns_fetcher: Callable[[str], bytes] | None = None) -> Starlette:
    """The ASGI app. ``store``/``transport`` default to those the settings name (opened lazily);
    ``sns_fetcher`` replaces HTTPS fetching of SNS certificates and SubscribeURLs (tests)."""
    svc = Services(settings, store=store, transport=transport, sns_fetcher=sns_fetcher)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await svc.close_loop_writer()
        svc.close()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe.show, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe.one_click, methods=["POST"]),
        Route("/unsubscribe/{token}/resubscribe", unsubscribe.resubscribe, methods=["POST"]),
        Route("/subscribe", subscribe.form_page, methods=["GET"]),
        Route("/subscribe", subscribe.submit, methods=["POST"]),
        Route("/confirm/{token}", subscribe.confirm_show, methods=["GET"]),
        Route("/confirm/{token}", subscribe.confirm_post, methods=["POST"]),
        Route("/webhooks/ses", webhook.receive, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers=_error_handlers(svc), lifespan=lifespan,
                    middleware=[Middleware(AccessLog)])
    app.router.redirect_slashes = False  # _slash_twin does it, without trusting the Host header
    app.state.services = svc
    return app


def app_from_env() -> Starlette:
    """The app with settings from ``TWIR_MAIL_*`` (and the file ``TWIR_MAIL_CONFIG`` names).

    What every deployment runs (serve, systemd, Docker, Lambda), so it is where the development
    secret is refused on a public URL (ConfigError)."""
    from mailer.config import load_settings
    from mailer.web.startup import check_can_serve

    settings = load_settings()
    check_can_serve(settings)
    return create_app(settings)
