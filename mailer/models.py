"""Plain data shared between modules. No I/O here."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from pathlib import Path

# Filled per recipient at send time, identically in the HTML and text parts.
# Chosen to pass untouched through Jinja2, MJML, premailer/lxml and
# quoted-printable (ASCII letters and '@', no '=' or '%').
UNSUBSCRIBE_PLACEHOLDER = "@@UNSUBSCRIBE_URL@@"
# Address of the sample message `render` writes next to the HTML.
SAMPLE_RECIPIENT = "subscriber@example.invalid"
# The largest id a database row can have (a signed 64-bit integer on both databases): an id past
# it, from a signed token or the command line, names no row and cannot even be bound.
MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True)
class SponsorInfo:
    """A sponsor block: from an issue's `Sponsor:` header or the [sponsor] settings."""

    name: str
    url: str = ""
    logo: str = ""
    text: str = ""


@dataclass(frozen=True)
class Issue:
    """A parsed TWIR issue: Pelican headers plus the Markdown body."""

    path: Path
    title: str
    number: int
    date: dt.date
    category: str
    body: str  # Markdown, headers removed
    body_line: int  # 1-based line of the body's first line in the file (for file:line messages)
    subject: str | None = None  # `Subject:` override
    preheader: str | None = None  # `Preheader:` override
    sponsor: SponsorInfo | None = None  # `Sponsor:` override
    headers: dict[str, str] = field(default_factory=dict)
    header_lines: dict[str, int] = field(default_factory=dict)  # lower-case name -> 1-based line

    @property
    def stem(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Rendered:
    """One issue rendered once; per-recipient sending only fills the placeholder."""

    issue: Issue
    subject: str
    preheader: str
    html: str
    text: str
    web_url: str

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One lint result, printed as ``file:line: severity: message [code]``.

    ``code`` is stable: `check --ignore CODE` and ``<!-- check: ignore CODE -->`` use it."""

    path: str
    line: int | None
    severity: Severity
    message: str
    code: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        code = f" [{self.code}]" if self.code else ""
        return f"{where}: {self.severity.value}: {self.message}{code}"


class Status(str, enum.Enum):
    PENDING = "pending"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def suppressed(self) -> bool:
        return self in (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)


class DeliveryStatus(str, enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed; left like this by a crash = "unknown"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class CampaignStatus(str, enum.Enum):
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"


class CampaignKind(str, enum.Enum):
    SEND = "send"  # a real send to a list: at most one per (issue, list)
    TEST = "test"  # `send --to preview|ADDR`: [TEST] subject, any number of them


class FeedbackKind(str, enum.Enum):
    """``feedback_events.kind``: what SES said about a subscriber."""

    COMPLAINT = "complaint"
    BOUNCE_PERMANENT = "bounce-permanent"
    BOUNCE_TRANSIENT = "bounce-transient"


class DeliveryEvent(str, enum.Enum):
    """``deliveries.event``: the strongest SES event seen for a delivery, weakest first."""

    DELIVERY_DELAY = "delivery-delay"
    DELIVERY = "delivery"
    REJECT = "reject"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"

    @property
    def rank(self) -> int:
        return list(DeliveryEvent).index(self)


@dataclass(frozen=True)
class Campaign:
    """One send or test send of an issue, as the ledger records it."""

    id: int
    kind: CampaignKind
    issue_number: int
    issue_path: str
    list_id: int | None
    list_name: str | None
    subject: str
    status: CampaignStatus
    transport: str
    html_bytes: int
    created_at: dt.datetime
    finished_at: dt.datetime | None
    pause_reason: str | None


@dataclass(frozen=True)
class Claim:
    """A delivery row claimed for sending (committed as ``sending`` before the transport call)."""

    delivery_id: int
    subscriber_id: int | None
    email: str


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed delivery: sent, failed, or queued (released unsent)."""

    delivery_id: int
    status: DeliveryStatus
    message_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Subscriber:
    """One row of the subscriber list (email/email_norm are None once forgotten)."""

    id: int
    email: str | None
    email_norm: str | None
    name: str | None
    status: Status
    source: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class HistoryEntry:
    """One change of a subscriber's status, with why it happened."""

    at: dt.datetime
    old_status: Status | None
    new_status: Status
    reason: str
    detail: str | None = None
