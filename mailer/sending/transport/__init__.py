"""Transports: where finished messages go (``[transport] kind``).

``open_transport(settings)`` returns one of ``outbox`` (``.eml`` files),
``smtp`` (smtplib) or ``ses`` (boto3 sesv2, Raw content); ``dry_run=True``
returns a null sink that accepts and discards everything. Every transport
is safe to call from several worker threads at once and classifies its
failures as ``RetryableTransportError`` (try again later: throttling, 5xx,
connection), ``PermanentTransportError`` (this message/recipient only) or
``SendingPaused`` (the account cannot send at all).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from mailer.config import Settings
from mailer.errors import ConfigError
from mailer.sending.transport.base import NullTransport, Transport
from mailer.sending.transport.outbox import OutboxTransport

__all__ = ["Transport", "NullTransport", "OutboxTransport", "open_transport", "check_sendable", "sendable_warnings"]

# The embedded default; unsubscribe links pointing at it are useless to real readers.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
REMOTE_KINDS = ("smtp", "ses")


def check_sendable(settings: Settings) -> None:
    """Refuse real delivery with the development secret or an unsubscribe URL readers cannot use."""
    if settings.transport.kind not in REMOTE_KINDS:
        return
    if not settings.has_real_secret:
        raise ConfigError("sending through %s needs a real secret: set TWIR_MAIL_SECRET_KEY "
                          "(at least 16 characters)" % settings.transport.kind, setting="TWIR_MAIL_SECRET_KEY")
    base = settings.web.base_url.rstrip("/")
    if base == DEFAULT_BASE_URL:
        raise ConfigError(f"sending through {settings.transport.kind} needs the public [web] base_url "
                          f"(unsubscribe links would point at {base})", setting="web.base_url")


def sendable_warnings(settings: Settings) -> list[str]:
    """What is allowed but wrong for real readers (a staging or local-test setup may want it)."""
    if settings.transport.kind not in REMOTE_KINDS:
        return []
    base = settings.web.base_url.rstrip("/")
    parts = urlsplit(base)
    out = []
    if _local_host(parts.hostname or ""):
        out.append(f"[web] base_url {base} is a local address: readers' unsubscribe links will not work")
    elif parts.scheme != "https":
        # RFC 8058: one-click unsubscribe needs an HTTPS URI (Gmail and Yahoo ignore others).
        out.append(f"[web] base_url {base} is not https://: Gmail and Yahoo ignore one-click unsubscribe")
    if not settings.newsletter.postal_address.strip():
        # CAN-SPAM: commercial email (TWIR carries sponsors) must show a valid postal address.
        out.append("[newsletter] postal_address is empty (TWIR_MAIL_NEWSLETTER_POSTAL_ADDRESS): "
                   "commercial email must carry a physical postal address in its footer")
    return out


def _local_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified or ip.is_link_local


def open_transport(settings: Settings, *, dry_run: bool = False) -> Transport:
    if dry_run:
        return NullTransport(name="dry-run")
    kind = settings.transport.kind
    if kind == "outbox":
        return OutboxTransport(settings.outbox_dir)
    if kind == "smtp":
        from mailer.sending.transport.smtp import SmtpTransport

        return SmtpTransport(settings.smtp, settings.smtp_password)
    if kind == "ses":
        from mailer.sending.transport.ses import SesTransport

        return SesTransport(settings.ses, workers=settings.send.workers)
    raise ConfigError(f"unknown transport kind {kind!r}", setting="transport.kind")
