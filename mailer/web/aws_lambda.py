"""The web app on AWS Lambda: ``mailer.web.aws_lambda.handler`` (API Gateway or a function URL).

Mangum adapts Lambda events to the ASGI app of ``mailer.web.app_from_env``. The
deployed function's entry is ``mailer.lambda_entry.handler``, which first reads
its secrets from SSM and then hands every event to this handler.

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

    from mailer.web import app_from_env

    # lifespan "off": a Lambda container has no orderly shutdown to run it on.
    return Mangum(app_from_env(), lifespan="off")


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
