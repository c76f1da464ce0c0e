"""Amazon SES transport: boto3 ``sesv2`` ``SendEmail`` with Raw content.

botocore's own retries are off for SendEmail (one attempt per call): its
retries would go out unpaced, exceeding the rate exactly when SES throttles.
Failures are classified here and the campaign retries them with backoff,
each attempt taking a slot of the pacer. The client is shared by all worker threads (botocore
clients are thread-safe) with a connection pool sized to the workers.
"""

from __future__ import annotations

import re

from mailer.aws.client import AwsError, build_client, error_code, error_message, http_status, retryable, shown_message
from mailer.config import Ses
from mailer.errors import ConfigError, PermanentTransportError, RetryableTransportError, SendingPaused, TransportError
from mailer.sending.transport.base import Transport

PAUSE_CODES = {"SendingPausedException", "AccountSuspendedException", "AccountSendingPausedException",
               "ConfigurationSetSendingPausedException",
               # These concern every message of the campaign alike (quota used up, sender
               # domain not verified, configuration set missing): pausing beats failing everyone.
               "LimitExceededException", "MailFromDomainNotVerifiedException", "NotFoundException",
               "ConfigurationSetDoesNotExist"}
AUTH_CODES = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
              "AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException"}
DENIED_CODES = {"AccessDenied", "AccessDeniedException"}
_TAG_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def classify_client_error(exc) -> TransportError:
    """Map a botocore ClientError to retryable / permanent / paused."""
    code, message, status = error_code(exc), shown_message(error_message(exc)), http_status(exc)
    text = f"SES {code or status}: {message}"
    if code in PAUSE_CODES or "daily message quota" in message.lower():
        return SendingPaused(text, code=code)
    if code in AUTH_CODES or status == 403:  # a 403 concerns the credentials, not one message
        return SendingPaused(f"{text} (check the AWS credentials and region)", code=code)
    if retryable(code, status):
        return RetryableTransportError(text, code=code or str(status))
    return PermanentTransportError(text, code=code or str(status))


class SesTransport(Transport):
    name = "ses"
    local = False

    def __init__(self, cfg: Ses, *, workers: int = 8, max_attempts: int = 1, client=None):
        self.cfg = cfg
        self.client = client or self._client(cfg, workers, max_attempts)
        self._rate: float | None = None
        self._account: dict | None = None

    @staticmethod
    def _client(cfg: Ses, workers: int, max_attempts: int, service: str = "sesv2"):
        try:
            return build_client(service, region=cfg.region, endpoint_url=cfg.endpoint_url,
                                attempts=max_attempts, pool=max(10, workers + 2), connect_timeout=10)
        except AwsError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
            raise ConfigError(exc.message, setting="AWS credentials") from None

    def send(self, raw: bytes, *, sender: str, recipient: str, tags: dict[str, str]) -> str:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        params = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": raw}},
            "EmailTags": [{"Name": k, "Value": _TAG_SAFE.sub("_", v)[:256]} for k, v in tags.items()],
        }
        if self.cfg.configuration_set:
            params["ConfigurationSetName"] = self.cfg.configuration_set
        try:
            return self.client.send_email(**params)["MessageId"]
        except ClientError as exc:
            raise classify_client_error(exc) from None
        except NoCredentialsError:
            raise SendingPaused("no AWS credentials found (environment, ~/.aws or instance role)") from None
        except BotoCoreError as exc:  # connection refused/reset, timeouts
            raise RetryableTransportError(f"SES connection problem: {exc}", code="connection") from None

    def account_rate(self) -> float | None:
        """``MaxSendRate`` from sesv2 GetAccount, else from v1 GetSendQuota (asked once)."""
        if self._rate is None:
            self._rate = self._read_rate()
        return self._rate

    def account(self) -> dict | None:
        """SESv2 GetAccount, read once (SendingEnabled, EnforcementStatus, SendQuota...); None where
        it cannot be read (an emulator without it, credentials that may only send)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if self._account is None:
            try:
                self._account = self.client.get_account()
            except NoCredentialsError:
                raise SendingPaused("no AWS credentials found (environment, ~/.aws or instance role)") from None
            except (ClientError, BotoCoreError):
                self._account = {}
        return self._account or None

    def check(self) -> None:
        # Reading the quota needs working credentials and a reachable endpoint, like a send.
        try:
            self.account_rate()
        except SendingPaused as exc:
            if exc.code not in DENIED_CODES:
                raise
            # Valid credentials that may send but not read the quota (least privilege): fine
            # when the rate is given; resolving it from the account then says what to allow.

    def _read_rate(self) -> float:
        from botocore.exceptions import BotoCoreError, ClientError

        # No sesv2 GetAccount (older endpoints, emulators): ask v1.
        quota = (self.account() or {}).get("SendQuota", {})
        if quota.get("MaxSendRate"):
            return float(quota["MaxSendRate"])
        try:
            rate = self._client(self.cfg, 1, 3, "ses").get_send_quota().get("MaxSendRate")
            return float(rate) if rate else 0.0
        except ClientError as exc:
            code = error_code(exc)
            if code in DENIED_CODES:
                raise SendingPaused(f"SES {code}: these credentials may not read the sending quota; allow "
                                    "ses:GetAccount or ses:GetSendQuota, or give --rate or [ses] rate",
                                    code=code) from None
            raise classify_client_error(exc) from None
        except BotoCoreError as exc:
            raise SendingPaused(f"cannot reach SES to read the sending rate: {exc}") from None

    def close(self) -> None:
        try:
            self.client.close()
        except AttributeError:
            pass
