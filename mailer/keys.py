"""Keys derived from the configured secrets, one per purpose.

``TWIR_MAIL_SECRET_KEY`` is never used as a key itself: each purpose gets
``HMAC-SHA256(secret, "twir-mail/<purpose>")``, so a token key and the
address-hash key can never stand in for each other, and each can be rotated
on its own terms (docs/keys.md):

* token keys sign with the newest secret and verify with it and every secret in
  ``TWIR_MAIL_OLD_SECRET_KEYS`` (links already mailed keep working);
* the address-hash key keeps a forgotten address suppressed, so it must not
  change with the token secret: its root is ``TWIR_MAIL_ADDRESS_KEY`` if set,
  else the oldest configured secret. Lookups also accept hashes under the other
  configured secrets and the raw-secret form written before keys were derived.
"""

from __future__ import annotations

import hashlib
import hmac

from mailer.config import Settings

ADDRESS_LABEL = "twir-mail/address-hash"


def derive(secret: str, label: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), label.encode("utf-8"), hashlib.sha256).digest()


def token_secrets(settings: Settings) -> list[str]:
    """Secrets for tokens, newest (the signing one) first."""
    return list(dict.fromkeys([settings.secret_key, *settings.old_secret_keys]))


def address_root(settings: Settings) -> str:
    return settings.address_key or token_secrets(settings)[-1]


class AddressHasher:
    """Keyed hash of a normalized address (``subscribers.email_hash``, rate-limit keys)."""

    def __init__(self, settings: Settings):
        root = address_root(settings)
        self._key = derive(root, ADDRESS_LABEL)
        roots = list(dict.fromkeys([root, *token_secrets(settings)]))
        # Earlier keys still match: derived ones of other roots, and the raw secrets used before.
        self._also = [k for r in roots for k in (derive(r, ADDRESS_LABEL), r.encode("utf-8"))][1:]

    def digest(self, norm: str) -> str:
        return hmac.new(self._key, norm.encode(), hashlib.sha256).hexdigest()

    def digests(self, norm: str) -> list[str]:
        """The current hash first, then those an older key would have written."""
        data = norm.encode()
        return [self.digest(norm)] + [hmac.new(k, data, hashlib.sha256).hexdigest() for k in self._also]
