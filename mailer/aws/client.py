"""boto3 clients for the admin commands, and AWS failures as one-line errors.

``ses.endpoint_url`` (tests: a local emulator) applies to every service these
commands use, because an emulator serves SES, SNS and SSM on one endpoint.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from mailer.config import Settings, mask
from mailer.errors import TwirMailError


class AwsError(TwirMailError):
    """An AWS call failed: no credentials, endpoint unreachable, or refused."""


def client(settings: Settings, service: str):
    import boto3
    from botocore.config import Config

    # Fail fast on an unreachable endpoint instead of botocore's long default retries.
    config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})
    with aws_errors(f"AWS {service} client"):
        return boto3.session.Session().client(
            service, region_name=settings.ses.region or None,
            endpoint_url=settings.ses.endpoint_url or None, config=config,
        )


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Turn botocore exceptions raised while doing ``action`` into AwsError."""
    from botocore import exceptions as bx

    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise AwsError(f"{action}: no AWS credentials found (set AWS_PROFILE, or "
                       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)") from None
    except bx.NoRegionError:
        raise AwsError(f"{action}: no AWS region: set ses.region (TWIR_MAIL_SES_REGION)") from None
    except bx.EndpointConnectionError as exc:
        endpoint = mask(getattr(exc, "kwargs", {}).get("endpoint_url", ""))
        raise AwsError(f"{action}: cannot reach the AWS endpoint {endpoint}".rstrip()
                       + " (check ses.endpoint_url, ses.region and the network)") from None
    except bx.ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        raise AwsError(f"{action}: {error_code(exc) or http_status(exc)}: {message.strip()}") from None
    except bx.BotoCoreError as exc:
        raise AwsError(f"{action}: {exc}") from None
