"""Signed tokens for unsubscribe and subscription-confirmation links.

A token names a subscriber (and list) by id, never by address, and carries an
HMAC-SHA256 tag (truncated to 128 bits) under a key derived from
``TWIR_MAIL_SECRET_KEY`` and the token's purpose, so an unsubscribe token can
never pass as a confirmation token. Tags are compared in constant time.

Layout: ``base64url(version | purpose | fields...) "." base64url(tag)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
from dataclasses import dataclass

from mailer.errors import TokenError
from mailer.keys import derive
from mailer.models import MAX_ROW_ID

VERSION = 2  # issued_at in microseconds (1: whole seconds; still verified)
VERSIONS = (1, 2)
TAG_BYTES = 16
UNSUBSCRIBE = 1
CONFIRM = 2
CLOCK_SKEW = 300  # seconds a token's issue time may lie ahead (another host's clock)
# version, purpose, subscriber id, list id, issued at (unix microseconds; seconds in version 1)
_LAYOUT = struct.Struct(">BBQQQ")


@dataclass(frozen=True)
class TokenData:
    purpose: int
    subscriber_id: int
    list_id: int
    issued_at: float  # unix seconds
    version: int = VERSION


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # base64 has several spellings of the same bytes (padding, stray low bits):
    # accept only the one we issue, so a token has exactly one valid form.
    if _b64(data) != text:
        raise ValueError("non-canonical base64")
    return data


class Signer:
    """Makes and checks tokens; build one per process (key derivation is done once).

    Signs with ``secret``; verifies with it and each of ``old`` (rotation: links already
    mailed keep working). The per-purpose derivation is the one every issued token uses.
    """

    def __init__(self, secret: str, old: tuple[str, ...] | list[str] = ()):
        if not secret:
            raise TokenError("no secret key configured (TWIR_MAIL_SECRET_KEY)")
        roots = list(dict.fromkeys([secret, *(o for o in old if o)]))
        self._keys = [{purpose: derive(root, f"twir-mail/token/{purpose}") for purpose in (UNSUBSCRIBE, CONFIRM)}
                      for root in roots]

    @classmethod
    def from_settings(cls, settings) -> "Signer":
        return cls(settings.secret_key, settings.old_secret_keys)

    def _tag(self, purpose: int, payload: bytes, keys: dict | None = None) -> bytes:
        key = (keys or self._keys[0])[purpose]
        return hmac.new(key, payload, hashlib.sha256).digest()[:TAG_BYTES]

    def make(self, purpose: int, subscriber_id: int, list_id: int = 0, issued_at: float | None = None,
             version: int = VERSION) -> str:
        issued = time.time() if issued_at is None else issued_at
        stamp = int(issued * 1_000_000) if version >= 2 else int(issued)
        payload = _LAYOUT.pack(version, purpose, subscriber_id, list_id, stamp)
        return f"{_b64(payload)}.{_b64(self._tag(purpose, payload))}"

    def unsubscribe_token(self, subscriber_id: int, list_id: int) -> str:
        # issued_at 0: the link in a years-old email keeps working, and the same
        # recipient always gets the same token (stable, cacheable URLs): version 1, as ever.
        return self.make(UNSUBSCRIBE, subscriber_id, list_id, issued_at=0, version=1)

    def confirm_token(self, subscriber_id: int, list_id: int) -> str:
        return self.make(CONFIRM, subscriber_id, list_id)

    def verify(self, token: str, purpose: int, max_age: float | None = None, now: float | None = None) -> TokenData:
        """Return the token's data or raise ``TokenError`` (never says which part was wrong)."""
        try:
            body, _, tag = token.partition(".")
            payload, given = _unb64(body), _unb64(tag)
        except (binascii.Error, ValueError, UnicodeError):
            raise TokenError("invalid token") from None
        if len(payload) != _LAYOUT.size or len(given) != TAG_BYTES:
            raise TokenError("invalid token")
        # Check the tag before looking at any field: a forged token learns nothing.
        if not any([hmac.compare_digest(self._tag(purpose, payload, keys), given) for keys in self._keys]):
            raise TokenError("invalid token")
        version, kind, subscriber_id, list_id, stamp = _LAYOUT.unpack(payload)
        if version not in VERSIONS or kind != purpose:
            raise TokenError("invalid token")
        if subscriber_id > MAX_ROW_ID or list_id > MAX_ROW_ID:  # no such row (and its lookup would overflow)
            raise TokenError("invalid token")
        issued = stamp / 1_000_000 if version >= 2 else float(stamp)
        if max_age is not None:
            age = (now if now is not None else time.time()) - issued
            if age > max_age:
                raise TokenError("expired token")
            if age < -CLOCK_SKEW:  # "issued" later than now: never by us, and it would never expire
                raise TokenError("invalid token")
        return TokenData(kind, subscriber_id, list_id, issued, version)
