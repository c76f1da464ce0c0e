"""``POST /webhooks/ses``: SNS HTTP(S) deliveries of SES feedback.

Order of checks: basic auth (if configured) -> size and JSON shape (400) ->
topic, certificate host and signature (403) -> act. Nothing is written before
the message is verified. Answers are short plain text: SNS only reads the code.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from mailer.feedback import apply as applyfeedback
from mailer.aws.client import AwsError
from mailer.errors import WebhookError
from mailer.aws.sns import MAX_BODY, parse_sns_body
from mailer.feedback.events import parse_ses_events
from mailer.web.context import Services, read_body

log = logging.getLogger("twir_mail.webhook")
PUBLIC = {403: "refused", 502: "cannot confirm subscription, try again later"}


def _text(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(text + "\n", status_code=status, headers={"Cache-Control": "no-store"})


def authorised(svc: Services, header: str | None) -> bool:
    """Constant-time basic-auth check; always true when no user is configured."""
    user = svc.settings.webhook.basic_auth_user
    if not user:
        return True
    if not svc.settings.webhook_password:
        # A user without a password would make "user:" the secret: refuse everything instead.
        log.error("webhook.basic_auth_user is set but TWIR_MAIL_WEBHOOK_PASSWORD is not: refusing")
        return False
    expected = f"{user}:{svc.settings.webhook_password}".encode("utf-8")
    scheme, _, value = (header or "").partition(" ")
    try:
        given = base64.b64decode(value.strip(), validate=True) if scheme.lower() == "basic" else b""
    except (binascii.Error, ValueError):
        given = b""
    return hmac.compare_digest(given, expected)


async def _read(request: Request) -> bytes:
    body = await read_body(request, MAX_BODY)
    if body is None:
        raise WebhookError("body too large", status=413)
    return body


def _confirm_subscription(svc: Services, doc: dict) -> None:
    token = doc.get("Token")
    if not isinstance(token, str) or not token:
        raise WebhookError("SubscriptionConfirmation without Token", status=400)
    try:
        svc.confirm_sns_subscription(doc["TopicArn"], token)
    except AwsError as exc:
        # 502 so SNS retries the confirmation later.
        raise WebhookError(f"cannot confirm subscription: {exc.message}", status=502) from None
    log.info("confirmed SNS subscription to %s", doc["TopicArn"])


def _handle(svc: Services, doc: dict) -> str:
    svc.verifier.verify(doc)  # fetches the certificate: blocking, so run in a thread
    svc.prune_if_due()  # sns_messages grows with every notification: drop ids SNS will not resend
    kind = doc["Type"]
    if kind == "SubscriptionConfirmation":
        _confirm_subscription(svc, doc)
        return "subscription confirmed"
    if kind == "UnsubscribeConfirmation":
        log.warning("SNS says the webhook was unsubscribed from %s", doc["TopicArn"])
        return "noted"
    message = doc.get("Message")
    events = parse_ses_events(message) if isinstance(message, str) else []
    fresh = applyfeedback.apply_notification(svc.store, svc.settings, doc["MessageId"], events)
    return f"applied {len(events)} event(s)" if fresh else "already processed"


async def receive(request: Request):
    svc: Services = request.app.state.services
    if not authorised(svc, request.headers.get("authorization")):
        return PlainTextResponse("authentication required\n", status_code=401,
                                 headers={"WWW-Authenticate": 'Basic realm="twir-mail"'})
    try:
        doc = parse_sns_body(await _read(request))
        # SNS sends both headers; whatever sends them must agree with the signed body.
        for name, key in (("x-amz-sns-message-type", "Type"), ("x-amz-sns-message-id", "MessageId")):
            header = request.headers.get(name)
            if header is not None and header != doc[key]:
                raise WebhookError(f"{name} does not match the body", status=400)
        return _text(200, await run_in_threadpool(_handle, svc, doc))
    except WebhookError as exc:
        log.warning("webhook refused (%s): %s", exc.status, exc.message)
        # The poster learns what was malformed (400, 413), not why verification failed (403) nor
        # what AWS answered us (502: it can name the account, the role and a missing permission).
        return _text(exc.status, PUBLIC.get(exc.status, exc.message))
