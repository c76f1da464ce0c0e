"""AWS Lambda entry point: ``mailer.web.aws_lambda.handler`` (API Gateway or a function URL).

Settings come from the environment (``TWIR_MAIL_*``, optionally a config file
named by ``TWIR_MAIL_CONFIG``). The app is built once per container, on the
first event, and reused by later invocations.
"""

from __future__ import annotations

import logging
from typing import Any

from mailer.errors import TwirMailError

log = logging.getLogger("twir_mail.web")

_handler = None


def _build():
    from mangum import Mangum

    # lifespan "off": a Lambda container has no orderly shutdown to run it on.
    return Mangum(asgi_app(), lifespan="off")


def handler(event: dict, context: Any) -> dict:
    global _handler
    if _handler is None:
        try:
            _handler = _build()
        except TwirMailError as exc:
            # One line in the function's log, not a traceback; every event fails until it is fixed.
            log.critical("error: %s", exc)
            raise SystemExit(f"error: {exc}") from None
    return _handler(event, context)


def asgi_app():
    """App factory from the environment (``serve --workers N`` starts one per process).

    Raises ConfigError rather than serve with the development secret on a public URL."""
    from mailer.config import load_settings
    from mailer.web import create_app
    from mailer.web.startup import check_can_serve

    settings = load_settings()
    check_can_serve(settings)
    return create_app(settings)
