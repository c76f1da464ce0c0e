"""SMTP transport: smtplib with STARTTLS or implicit TLS and login.

One connection per worker thread (smtplib objects are not thread-safe),
opened lazily and reopened after a connection error. Works with SES's SMTP
interface and any relay.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading

from mailer.config import Smtp
from mailer.errors import PermanentTransportError, RetryableTransportError, SendingPaused
from mailer.sending.transport.base import Transport, header_message_id

# SES SMTP answers "454 Throttling failure: Daily message quota exceeded" when the
# day's quota is used up: no retry helps until tomorrow.
_QUOTA_WORDS = ("daily message quota", "daily sending quota")


def classify_smtp(exc: Exception) -> Exception:
    """Map an smtplib/socket exception to a transport error class."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendingPaused(f"SMTP login refused: {exc.smtp_code} {_text(exc.smtp_error)}", code=str(exc.smtp_code))
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, msg = next(iter(exc.recipients.values()))
        return _by_code(code, msg, "recipient refused")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        if 400 <= exc.smtp_code < 500:
            return _by_code(exc.smtp_code, exc.smtp_error, "sender refused")
        return SendingPaused(f"SMTP server refused the sender: {exc.smtp_code} {_text(exc.smtp_error)}",
                             code=str(exc.smtp_code))
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(exc.smtp_code, exc.smtp_error, "refused")
    if isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError)):
        return RetryableTransportError(f"SMTP connection problem: {exc}", code="connection")
    return PermanentTransportError(f"SMTP error: {exc}")


def _text(raw) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _by_code(code: int, msg, what: str) -> Exception:
    text = f"SMTP {what}: {code} {_text(msg)}"
    if 400 <= code < 500:
        if any(w in text.lower() for w in _QUOTA_WORDS):
            return SendingPaused(text, code=str(code))
        return RetryableTransportError(text, code=str(code))
    return PermanentTransportError(text, code=str(code))


class SmtpTransport(Transport):
    name = "smtp"
    local = False

    def __init__(self, cfg: Smtp, password: str):
        self.cfg = cfg
        self.password = password
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        context = ssl.create_default_context()
        if cfg.security == "tls":
            conn = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            if cfg.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
        if cfg.username:
            conn.login(cfg.username, self.password)
        with self._lock:
            self._all.append(conn)
        return conn

    def _conn(self) -> smtplib.SMTP:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            try:
                conn.close()
            except (OSError, smtplib.SMTPException):
                pass

    def send(self, raw: bytes, *, sender: str, recipient: str, tags: dict[str, str]) -> str:
        try:
            conn = self._conn()
            conn.sendmail(sender, [recipient], raw)
        except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
            err = classify_smtp(exc)
            if not isinstance(err, PermanentTransportError):
                self._drop()  # the session may be in any state: start afresh
            else:
                self._reset()
            raise err from None
        return header_message_id(raw) or ""

    def check(self) -> None:
        """Connect and log in once (then hang up): a wrong host or password fails here."""
        try:
            self._conn()
        except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
            raise classify_smtp(exc) from None
        finally:
            self._drop()

    def _reset(self) -> None:
        conn = getattr(self._local, "conn", None)
        try:
            if conn is not None:
                conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                try:
                    conn.close()
                except OSError:
                    pass
