"""The one exception hierarchy of twir-mail.

Library code raises these with enough context (file, line, address, setting)
for the CLI to print a single line such as ``error: issue.md:12: ...`` and
exit non-zero. Nothing below the CLI prints or exits.
"""

from __future__ import annotations

from pathlib import Path


class TwirMailError(Exception):
    """Root of every error a user can cause or fix.

    ``exit_code`` lets the CLI map families of errors to distinct codes
    (1 generic, 2 usage/config, 3 send paused, ...).
    """

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line

    def location(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line else self.path

    def __str__(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message


class ConfigError(TwirMailError):
    """A missing, unknown or invalid setting; ``setting`` names it."""

    exit_code = 2

    def __init__(self, message: str, *, setting: str | None = None, **kw):
        super().__init__(message, **kw)
        self.setting = setting


class IssueError(TwirMailError):
    """An issue file that cannot be read or parsed."""


class RenderError(TwirMailError):
    """Markdown/MJML/CSS rendering failed for an issue."""


class CheckFailed(TwirMailError):
    """``check`` found errors (the messages themselves are reported separately)."""


class StoreError(TwirMailError):
    """Database problems: unreachable server, missing migrations, constraint trouble."""


class StoreConflict(StoreError):
    """A write broke a uniqueness or foreign-key constraint (e.g. a concurrent insert won)."""


class SubscriberError(TwirMailError):
    """Bad address, unknown subscriber, forbidden status change."""

    def __init__(self, message: str, *, address: str | None = None, **kw):
        super().__init__(message, **kw)
        self.address = address


class ImportFileError(TwirMailError):
    """An import file that cannot be read at all (single bad rows are reported, not raised)."""


class TokenError(TwirMailError):
    """A forged, truncated, expired or tampered token."""


class TransportError(TwirMailError):
    """Base for delivery problems.

    ``retryable`` errors (throttling, 5xx, connection) are retried with backoff and
    never count as a recipient failure; others fail that recipient only.
    """

    retryable = False

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.code = code
        self.retry_after = retry_after


class RetryableTransportError(TransportError):
    retryable = True


class PermanentTransportError(TransportError):
    """The transport refused this one message (e.g. SES MessageRejected)."""


class SendingPaused(TransportError):
    """The account cannot send at all (SendingPausedException, suspended, too many failures).

    The campaign is paused and can be resumed once the cause is fixed.
    """

    exit_code = 3


class CampaignError(TwirMailError):
    """Campaign bookkeeping: already sent, unknown id, nothing to resume."""


class Interrupted(TwirMailError):
    """The user pressed Ctrl-C; state is saved and the campaign is resumable."""

    exit_code = 130


class WebhookError(TwirMailError):
    """An SNS message that failed verification; ``status`` is the HTTP answer."""

    def __init__(self, message: str, *, status: int = 403, **kw):
        super().__init__(message, **kw)
        self.status = status
