"""Amazon SNS message verification (the SES feedback webhook's envelope).

Verification follows the SNS documentation: the signing certificate is fetched
only over HTTPS from ``sns.<region>.amazonaws.com`` (or ``.amazonaws.com.cn``)
and cached; the string to sign is built from the documented fields in their
documented order; SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA; only
configured TopicArns are accepted. Nothing here touches the database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import threading
import time
from collections import OrderedDict

from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

from mailer.config import Settings
from mailer.errors import WebhookError

# The middle label must look like a region (us-east-1, us-gov-west-1, cn-north-1): a looser
# pattern also admits S3 virtual-hosted bucket hosts such as sns.s3-external-1.amazonaws.com,
# whose content belongs to whoever owns the bucket "sns".
SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]+\.amazonaws\.com(?:\.cn)?")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
HASHES = {"1": "SHA1", "2": "SHA256"}  # SignatureVersion -> cryptography's hash class name
MAX_BODY = 256 * 1024  # SNS messages are at most 256 KB
# SNS stops retrying an HTTP delivery within hours (at most about 4 days with the longest custom
# policy), so a genuine message older than this is a replay. The web app remembers MessageIds
# for longer (web/context.py SNS_ID_KEEP): no replayed copy outlives its de-duplication row.
MAX_MESSAGE_AGE = dt.timedelta(days=6)
FAILED_FETCH_TTL = 10.0  # seconds a failed certificate fetch is remembered: brief, SNS retries later

Fetcher = Callable[[str], bytes]


def fetch_https(url: str, timeout: float = 5.0) -> bytes:
    """Default certificate fetcher: HTTPS only, certificate-verified, size-capped."""
    import urllib.request  # here: every web cold start imported it (6 ms) for the rare certificate fetch

    if urlsplit(url).scheme != "https":
        raise WebhookError("certificate URL is not HTTPS")
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (https checked)
        return resp.read(64 * 1024)


def parse_sns_body(body: bytes) -> dict:
    """The JSON document of an SNS HTTP(S) POST, or ``WebhookError(400)``."""
    if len(body) > MAX_BODY:
        raise WebhookError("body too large", status=413)
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[...]]]]
        raise WebhookError("body is not JSON", status=400) from None
    if not isinstance(doc, dict) or doc.get("Type") not in MESSAGE_TYPES:
        raise WebhookError("not an SNS message", status=400)
    for key in ("MessageId", "TopicArn", "Timestamp", "Signature", "SigningCertURL", "SignatureVersion"):
        if not isinstance(doc.get(key), str):
            raise WebhookError(f"SNS message without {key}", status=400)
    string_to_sign(doc)  # the signed fields present and strings: a 400 before any 403
    return doc


def sns_url(url: str) -> tuple[str, str] | None:
    """(origin, path) of an https URL on an SNS host (default port, no user info), else None."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for ":abc" or ":99999"
    except ValueError:  # also netlocs that NFKC-normalise to '@', '/', ... (a fullwidth '@')
        return None
    if (parts.scheme != "https" or port not in (None, 443) or "@" in parts.netloc
            or not SNS_HOST.fullmatch(parts.hostname or "")):
        return None
    return f"{parts.scheme}://{parts.netloc}", parts.path


def string_to_sign(doc: dict) -> bytes:
    names = NOTIFICATION_FIELDS if doc["Type"] == "Notification" else CONFIRMATION_FIELDS
    parts = []
    for name in names:
        value = doc.get(name)
        if value is None:
            if name == "Subject":
                continue  # optional in notifications
            raise WebhookError(f"SNS message without {name}", status=400)
        if not isinstance(value, str):
            raise WebhookError(f"SNS field {name} is not a string", status=400)
        parts.append(f"{name}\n{value}\n")
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:  # a JSON "\ud800" escape: a lone surrogate, which no UTF-8 signer wrote
        raise WebhookError("SNS message with a lone surrogate (invalid Unicode) in a signed field",
                           status=400) from None


def _check_age(timestamp: str) -> None:
    """Refuse (403) a message older than MAX_MESSAGE_AGE: signed, but a replay."""
    try:
        sent = dt.datetime.fromisoformat(timestamp)
    except ValueError:
        raise WebhookError("unreadable Timestamp") from None
    if sent.tzinfo is None or dt.datetime.now(dt.timezone.utc) - sent > MAX_MESSAGE_AGE:
        raise WebhookError("message too old (a replay)")


class SnsVerifier:
    """Checks SNS messages; certificates are fetched once per URL and cached."""

    def __init__(self, settings: Settings, fetcher: Fetcher | None = None, cache_size: int = 32):
        self.topic_arns = set(settings.webhook.topic_arns)
        self.test_origin = settings.webhook.test_cert_origin.rstrip("/")
        self.fetcher = fetcher or fetch_https
        self._cache: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._failed: OrderedDict[str, tuple[float, str]] = OrderedDict()  # url -> (when, why)
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def check_cert_url(self, url: str) -> str:
        """Return the URL to fetch the certificate from, or refuse (403)."""
        if self._test_origin_of(url):
            return url
        found = sns_url(url)
        if found is None:
            raise WebhookError("signing certificate not from an SNS host")
        if not found[1].endswith(".pem"):
            raise WebhookError("signing certificate URL is not a .pem")
        # Tests only: the emulator serves the same path the real host would.
        return f"{self.test_origin}{found[1]}" if self.test_origin else url

    def _test_origin_of(self, url: str) -> bool:
        return bool(self.test_origin) and (url == self.test_origin or url.startswith(self.test_origin + "/"))

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        fetch_url = self.check_cert_url(url)
        with self._lock:
            if url in self._cache:
                self._cache.move_to_end(url)
                return self._cache[url]
            failed = self._failed.get(url)
            if failed is not None and time.monotonic() - failed[0] < FAILED_FETCH_TTL:
                # A flood of messages naming a dead or slow URL must not mean a fetch (and a
                # blocked thread for the timeout) per message: the same answer for a while.
                raise WebhookError(failed[1])

        # cryptography is imported here, not at module level: the web app (and a Lambda
        # cold start serving an unsubscribe click) only needs it for the webhook.
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            cert = x509.load_pem_x509_certificate(self.fetcher(fetch_url))
        except Exception as exc:  # network errors, bad PEM: either way not verifiable
            message = exc.message if isinstance(exc, WebhookError) else \
                f"cannot load signing certificate: {type(exc).__name__}"
            with self._lock:
                self._failed[url] = (time.monotonic(), message)
                while len(self._failed) > self._cache_size:
                    self._failed.popitem(last=False)
            raise WebhookError(message) from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookError("signing certificate has no RSA key")
        with self._lock:
            self._cache[url] = key
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return key

    def verify(self, doc: dict) -> dict:
        """Return ``doc`` if it is a genuine SNS message for an accepted topic, else raise."""
        if doc["TopicArn"] not in self.topic_arns:
            raise WebhookError("topic not accepted")
        algorithm = HASHES.get(doc["SignatureVersion"])
        if algorithm is None:
            raise WebhookError("unsupported SignatureVersion")
        try:
            signature = base64.b64decode(doc["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookError("signature is not base64") from None
        payload = string_to_sign(doc)
        # Before the certificate: refused either way, and an old (or made-up) Timestamp must not
        # cost a fetch that holds a worker thread for up to its timeout.
        _check_age(doc["Timestamp"])
        key = self._public_key(doc["SigningCertURL"])
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            key.verify(signature, payload, padding.PKCS1v15(), getattr(hashes, algorithm)())
        except InvalidSignature:
            raise WebhookError("bad signature") from None
        return doc

    def check_subscribe_url(self, url: str) -> str:
        if self._test_origin_of(url) or sns_url(url) is not None:
            return url
        raise WebhookError("SubscribeURL not on an SNS host")
