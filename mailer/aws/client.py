"""The one boto3 client builder and the one AWS error decoder.

Every AWS client of twir-mail is made by ``build_client`` (SES sending, the
admin commands, SSM at a Lambda cold start unless the environment allows the
botocore-free call of aws/params.py), and every botocore failure is read
by ``error_code``/``error_message``/``http_status`` and, where a one-line error
is wanted, ``aws_errors``, whose wording (``unreachable``, ``refused``) the
botocore-free call shares. ``client(settings, service)`` is the admin
commands' shorthand: ``ses.endpoint_url`` (tests: a local emulator) applies to
every service they use, because an emulator serves SES, SNS and SSM on one endpoint;
SQS (the feedback queue) takes ``feedback.endpoint_url`` first (``endpoint_for``).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator

from mailer.config import Settings, mask
from mailer.errors import TwirMailError


class AwsError(TwirMailError):
    """An AWS call failed: no credentials, endpoint unreachable, or refused."""


def build_client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
                 attempts: int = 3, pool: int = 10, connect_timeout: float = 5, read_timeout: float = 30):
    """A boto3 client on its own session (sessions are not thread-safe; clients are).

    ``attempts`` counts the first try: botocore retries only within it. The short connect
    timeout fails fast on an unreachable endpoint instead of botocore's 60 s default.
    ``region``/``endpoint_url`` empty: the standard AWS_* variables and files decide.
    """
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout, max_pool_connections=pool,
                    retries={"mode": "standard", "total_max_attempts": attempts})
    with aws_errors(f"AWS {service} client"):
        return boto3.session.Session().client(service, region_name=region or None,
                                              endpoint_url=endpoint_url or None, config=config)


def endpoint_for(settings: Settings, service: str) -> str | None:
    """The endpoint override of ``service`` (None: the AWS default)."""
    if service == "sqs" and settings.feedback.endpoint_url:
        return settings.feedback.endpoint_url
    return settings.ses.endpoint_url or None


def client(settings: Settings, service: str, *, region: str | None = None):
    """A client for the admin commands, the feedback queue and SNS confirmations (``region``: the
    topic's, when it differs from ``[ses] region``), endpoint by ``endpoint_for``."""
    return build_client(service, region=region or settings.ses.region, endpoint_url=endpoint_for(settings, service))


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: Exception) -> str:
    """The AWS error message of a botocore ClientError (else the exception's text)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "") or exc)


def http_status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


SETTINGS_HINT = "check ses.endpoint_url, ses.region and the network"
# Codes botocore's standard retry mode retries (throttling, then transient ones), and the
# server-side failures SES names.
RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "RequestTimeout",
    "RequestTimeoutException", "PriorRequestNotComplete", "ServiceUnavailable", "InternalFailure",
    "InternalServerError"})

# AWS's SignatureDoesNotMatch quotes the canonical request it expected, session token included
# (x-amz-security-token:...): a message must not carry it into a log or a terminal.
_CANONICAL = re.compile(r"\s*The Canonical String for this request should have been.*", re.DOTALL)
_SESSION_TOKEN = re.compile(r"(x-amz-security-token\s*[:=]\s*)\S+", re.IGNORECASE)
_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def unreachable(action: str, endpoint: str, hint: str = SETTINGS_HINT) -> AwsError:
    """The error for an endpoint that did not answer (``endpoint`` is shown masked). Shared by
    ``aws_errors`` and the botocore-free SSM read (aws/params.py), so both say it alike;
    ``hint`` names the settings that chose the endpoint."""
    return AwsError(f"{action}: cannot reach the AWS endpoint {mask(endpoint)}".rstrip() + f" ({hint})")


def shown_message(message: str, secrets: tuple[str, ...] = ()) -> str:
    """An AWS error message fit for a terminal or a log: one line, without the canonical request
    AWS may quote, a session token, the environment's AWS secrets or ``secrets``."""
    message = _SESSION_TOKEN.sub(r"\1***", _CANONICAL.sub("", message))
    message = mask(message, (*secrets, *(os.environ.get(name, "") for name in _ENV_SECRETS)))
    return " ".join(message.split())


def refused(action: str, code: str | int, message: str, secrets: tuple[str, ...] = ()) -> AwsError:
    """The error for a request AWS answered with an error: its code (else the HTTP status) and
    message (``shown_message``). Shared like ``unreachable``."""
    return AwsError(f"{action}: {code}: {shown_message(message, secrets)}")


def retryable(code: str, status: int) -> bool:
    """Whether an AWS error answer is worth another attempt: throttling, transient, or 5xx.
    The one rule for the SES transport and the direct SSM call."""
    return code in RETRYABLE_CODES or status == 429 or status >= 500


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn botocore exceptions raised while doing ``action`` into AwsError."""
    from botocore import exceptions as bx

    action = mask(action)  # it may quote a setting: "SQS queue https://user:password@..."
    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise AwsError(f"{action}: no AWS credentials found (set AWS_PROFILE, or "
                       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)") from None
    except bx.NoRegionError:
        raise AwsError(f"{action}: no AWS region: set ses.region (TWIR_MAIL_SES_REGION)") from None
    except bx.EndpointConnectionError as exc:
        raise unreachable(action, getattr(exc, "kwargs", {}).get("endpoint_url", "")) from None
    except bx.ClientError as exc:
        raise refused(action, error_code(exc) or http_status(exc), error_message(exc)) from None
    except bx.BotoCoreError as exc:
        raise AwsError(f"{action}: {exc}") from None
