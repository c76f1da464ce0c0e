"""One AWS JSON 1.1 call (the protocol of SSM, among others) with the standard library only.

For the Lambda cold start's SSM read (aws/params.py), where importing boto3 would cost
more than the rest of the start. It behaves as a client of aws/client.py ``build_client``
would: 5 s connect and 30 s read timeouts, three attempts in all on connection errors,
5xx answers and throttling (a short jittered backoff between them), and the same one-line
AwsErrors (``unreachable``/``refused`` there). Nothing is logged; the secret key, the
session token and the answer's values never reach an error message.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import ssl
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from mailer.aws import sigv4
from mailer.aws.client import AwsError, refused, retryable, unreachable
from mailer.config import is_http_url, mask

ATTEMPTS, CONNECT_TIMEOUT, READ_TIMEOUT = 3, 5.0, 30.0  # as build_client
BACKOFF = 0.1  # seconds, doubled per retry: a cold start cannot wait botocore's 1-2 s
ENDPOINT_HINT = "check AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION and the network"


class Target(NamedTuple):
    """Where the call goes and the credentials that sign it."""
    url: str
    region: str
    service: str
    access_key: str
    secret_key: str
    token: str
    ca_bundle: str = ""  # AWS_CA_BUNDLE: trust only these CAs (as botocore), else the system's

    def __repr__(self) -> str:  # should one ever be logged: no secret key, no token
        return f"Target(url={mask(self.url)!r}, region={self.region!r}, access_key={self.access_key!r})"


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def call(target: Target, operation: str, payload: dict, action: str) -> dict:
    """POST ``payload`` as ``operation`` (e.g. 'AmazonSSM.GetParameters'); the decoded answer.
    ``action`` starts every error message, as in ``aws_errors(action)``."""
    if not is_http_url(target.url):
        raise AwsError(f"{action}: the AWS endpoint {mask(target.url)} is not an http(s):// URL "
                       "(AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL)")
    context = tls_context(target, action)
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": operation}
    error = AwsError(action)
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, BACKOFF * 2 ** (attempt - 1)))  # jitter: retries do not march in step
        signed = sigv4.sign("POST", target.url, headers, body, region=target.region, service=target.service,
                            access_key=target.access_key, secret_key=target.secret_key, token=target.token)
        try:
            answer = post(target.url, signed, body, context)  # signed again each time: X-Amz-Date is fresh
        except ssl.SSLCertVerificationError as exc:  # retrying will not change the certificate
            raise AwsError(f"{action}: the AWS endpoint {mask(target.url)} has a certificate that does not "
                           f"verify ({exc.verify_message}; AWS_CA_BUNDLE)") from None
        except (OSError, http.client.HTTPException, ValueError):  # refused, reset, timed out, TLS, bad host name
            error = unreachable(action, target.url, ENDPOINT_HINT)
            continue
        if answer.status == 200:
            return decoded(answer, action)
        code, message = error_of(answer)
        error = refused(action, code or answer.status, message, (target.secret_key, target.token))
        if not retryable(code, answer.status):
            break
    raise error


def tls_context(target: Target, action: str) -> ssl.SSLContext | None:
    """Certificates verified, against the system's CAs or AWS_CA_BUNDLE's (None: plain http)."""
    if not target.url.lower().startswith("https:"):
        return None
    try:
        return ssl.create_default_context(cafile=target.ca_bundle or None)
    except (OSError, ssl.SSLError):
        raise AwsError(f"{action}: cannot read the CA bundle {target.ca_bundle} (AWS_CA_BUNDLE)") from None


def post(url: str, headers: dict[str, str], body: bytes, context: ssl.SSLContext | None) -> Answer:
    """One HTTP POST: ``CONNECT_TIMEOUT`` to connect, then ``READ_TIMEOUT`` per read."""
    parts = urlsplit(url)
    if context:
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT)
    try:
        connection.connect()
        connection.sock.settimeout(READ_TIMEOUT)
        # The query too: sigv4 signed it (an endpoint URL may carry one, e.g. behind a proxy).
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def decoded(answer: Answer, action: str) -> dict:
    """The JSON of a 200 answer; its text is never quoted (it holds the secrets)."""
    try:
        out = json.loads(answer.body)
    except ValueError:
        out = None
    if not isinstance(out, dict):
        raise AwsError(f"{action}: the AWS endpoint answered 200 with a body that is not a JSON object")
    return out


def error_of(answer: Answer) -> tuple[str, str]:
    """(code, message) of an error answer, read as botocore reads JSON protocol errors: the
    code from x-amzn-ErrorType or '__type' without its namespace ('...#AccessDeniedException').
    An XML error (moto's authentication errors, some proxies) gives its <Code> and <Message>."""
    try:
        doc = json.loads(answer.body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = answer.body.decode("utf-8", "replace")
        doc = {key: m.group(1) for key in ("Code", "Message") if (m := re.search(f"<{key}>([^<]*)</{key}>", text))}
    code = answer.headers.get("x-amzn-errortype", "").split(":")[0] or str(doc.get("__type") or doc.get("Code") or "")
    message = doc.get("message") or doc.get("Message") or ""
    return code.rsplit("#", 1)[-1], str(message) or http.client.responses.get(answer.status, "")
