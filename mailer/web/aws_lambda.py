"""AWS Lambda entry point: ``mailer.web.aws_lambda.handler`` (API Gateway or a function URL).

Settings come from the environment (``TWIR_MAIL_*``, optionally a config file
named by ``TWIR_MAIL_CONFIG``). The app is built once per container, on the
first event, and reused by later invocations.
"""

from __future__ import annotations

from typing import Any

_handler = None


def _build():
    from mangum import Mangum

    # lifespan "off": a Lambda container has no orderly shutdown to run it on.
    return Mangum(asgi_app(), lifespan="off")


def handler(event: dict, context: Any) -> dict:
    global _handler
    if _handler is None:
        _handler = _build()
    return _handler(event, context)


def asgi_app():
    """App factory from the environment (``serve --workers N`` starts one per process)."""
    from mailer.config import load_settings
    from mailer.web import create_app

    return create_app(load_settings())
