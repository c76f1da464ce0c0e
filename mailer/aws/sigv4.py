"""AWS Signature Version 4 request signing with the standard library only.

Why: the Lambda cold start makes one signed call (SSM GetParameters, aws/params.py),
and importing botocore to sign it costs more than the rest of the cold start.
The steps are AWS's: canonical request -> string to sign -> signing key -> signature
-> Authorization header. tests/test_sigv4.py holds this to AWS's published test
vectors and, for generated requests, to botocore's ``SigV4Auth`` byte for byte.
Headers only: no presigned URLs, no S3 rules (S3 encodes paths once, not twice),
no x-amz-content-sha256 (only S3 needs it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
# Headers a proxy or the HTTP stack may add, drop or rewrite in transit: signing one would
# turn a valid request into a SignatureDoesNotMatch. The same list as botocore's.
UNSIGNED = frozenset({"baggage", "connection", "expect", "keep-alive", "proxy-authenticate",
                      "proxy-authorization", "te", "traceparent", "tracestate", "trailer",
                      "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id"})
# Set by ``sign`` itself: a stale copy from an earlier attempt must not be signed again.
REPLACED = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})


def sign(method: str, url: str, headers: Mapping[str, str], body: bytes, *, region: str, service: str,
         access_key: str, secret_key: str, token: str = "", amz_date: str = "") -> dict[str, str]:
    """``headers`` plus Host, X-Amz-Date, X-Amz-Security-Token (with a session token) and
    Authorization: what to send with ``body`` to ``url``. ``amz_date`` (tests): the signing
    time as YYYYMMDDTHHMMSSZ, else now. A query in ``url`` must already be URI-encoded."""
    out = {name: value for name, value in headers.items() if name.lower() not in REPLACED}
    if not any(name.lower() == "host" for name in out):
        out["Host"] = host_of(url)  # sent as signed: the HTTP library must not pick its own
    out["X-Amz-Date"] = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if token:
        out["X-Amz-Security-Token"] = token  # temporary credentials: the token is signed too
    signed = headers_to_sign(out)
    day = out["X-Amz-Date"][:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = string_to_sign(out["X-Amz-Date"], scope, canonical_request(method, url, signed, body))
    key = signing_key(secret_key, day, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    return out


def host_of(url: str) -> str:
    """The Host header for ``url``: lower case, no user info, the port only if not the default."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host += f":{parts.port}"
    return host


def headers_to_sign(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case name -> canonical value, sorted by name. Repeated names (in any case) join
    with commas; each value's runs of white space become one space, as the server reads them."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers.items():
        if name.lower() not in UNSIGNED:
            grouped.setdefault(name.lower(), []).append(" ".join(value.split()))
    return {name: ",".join(grouped[name]) for name in sorted(grouped)}


def canonical_request(method: str, url: str, signed: Mapping[str, str], body: bytes) -> str:
    """The request as the server rebuilds it; any difference in a byte breaks the signature."""
    parts = urlsplit(url)
    return "\n".join([method.upper(), canonical_path(parts.path), canonical_query(parts.query),
                      "".join(f"{name}:{value}\n" for name, value in signed.items()),
                      ";".join(signed), hashlib.sha256(body).hexdigest()])


def canonical_path(path: str) -> str:
    """The path without '.' and '..' segments or empty ones (AWS folds '//'), then URI-encoded
    again: every service but S3 signs the already-encoded path encoded once more."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            segments = segments[:-1]
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def canonical_query(query: str) -> str:
    """name=value pairs sorted by name, then value; an already-encoded query stays as it is."""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&")) if query else []
    return "&".join(f"{name}={value}" for name, value in pairs)


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    """What the signature covers: the algorithm, the time, the scope and the request's hash."""
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])


def signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    """HMAC chain over the scope's parts (day, region, service, 'aws4_request'): a key valid
    for one day, region and service, so the secret key itself never signs a request."""
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
