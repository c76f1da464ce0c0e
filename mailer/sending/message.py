"""Build the MIME message: rendered once per send, personalised per recipient.

``MimeMessage`` is the one MIME builder (campaign messages through
``MessageTemplate``, and one-off mails such as the subscribe confirmation). It
quoted-printable-encodes the text and HTML parts once.
Only the lines holding ``UNSUBSCRIBE_PLACEHOLDER`` are kept raw and encoded
per recipient, so a recipient costs a few short encodes and a join instead of
a full render or MIME serialisation.

Headers are written by hand, not through ``email.policy``: the policies
RFC 2047-encode or refold long values, which corrupts ``List-Unsubscribe``
(RFC 8058 needs the URL verbatim in angle brackets).
"""

from __future__ import annotations

import binascii
import re
import uuid
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

from mailer.config import Settings
from mailer.errors import TransportError
from mailer.models import SAMPLE_RECIPIENT, UNSUBSCRIBE_PLACEHOLDER, Campaign, Rendered

CRLF = b"\r\n"
SAMPLE_TOKEN = "SAMPLE-TOKEN"


_FROM_LINE = re.compile(rb"^From ", re.M)


def _qp(text: str) -> bytes:
    """Quoted-printable (RFC 2045) with CRLF line ends; ``text`` uses LF."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    # mbox software rewrites a line starting "From " as ">From "; encode the F instead.
    encoded = _FROM_LINE.sub(b"=46rom ", encoded)
    # The encoded form has no raw CR, so turning every LF into CRLF is safe.
    return encoded.replace(b"\n", CRLF)


class _Part:
    """One body part as pre-encoded chunks, with raw lines for the placeholder."""

    def __init__(self, content_type: str, text: str):
        self.head = (
            f"Content-Type: {content_type}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if not text.endswith("\n"):
            text += "\n"
        # Alternate static (encoded bytes) and dynamic (raw str) pieces, split at
        # line boundaries: QP encodes line by line, so the pieces concatenate.
        self.pieces: list[bytes | str] = []
        static: list[str] = []
        for line in text.splitlines(keepends=True):
            if UNSUBSCRIBE_PLACEHOLDER in line:
                if static:
                    self.pieces.append(_qp("".join(static)))
                    static = []
                self.pieces.append(line)
            else:
                static.append(line)
        if static:
            self.pieces.append(_qp("".join(static)))

    @property
    def placeholders(self) -> int:
        return sum(p.count(UNSUBSCRIBE_PLACEHOLDER) for p in self.pieces if isinstance(p, str))

    def render(self, url: str) -> bytes:
        out = [self.head]
        for piece in self.pieces:
            out.append(piece if isinstance(piece, bytes) else _qp(piece.replace(UNSUBSCRIBE_PLACEHOLDER, url)))
        return b"".join(out)


def _ascii_header(name: str, value: str) -> str:
    return f"{name}: {value}"


def _address_header(value: str) -> str:
    """``Name <address>`` with a non-ASCII name RFC 2047-encoded (headers must stay 7-bit for SES)."""
    name, address = parseaddr(value)
    return formataddr((name, _address_ascii(address)), charset="utf-8")


def _list_id(value: str) -> str:
    """RFC 2919 ``phrase <list-label>``: only a non-ASCII phrase is encoded, the label stays verbatim."""
    if value.isascii():
        return value
    phrase, bracket, label = value.rpartition("<")
    if not bracket:
        return Header(value, "utf-8").encode()
    return f"{Header(phrase.strip(), 'utf-8').encode()} <{label}"


def encode_subject(subject: str) -> str:
    """Plain ASCII stays readable; anything else is RFC 2047 encoded (and folded)."""
    if subject.isascii() and len(subject) < 900:
        return subject
    return Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n")


def _address_ascii(address: str) -> str:
    """An address for a header: the domain as IDNA; a non-ASCII local part is refused."""
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise TransportError(f"invalid recipient address {address!r}")
    if not local.isascii():
        raise TransportError(f"address {address!r} needs SMTPUTF8, which twir-mail does not send")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}" if not domain.isascii() else address
    except UnicodeError:
        raise TransportError(f"invalid domain in {address!r}") from None


def _head(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


class MimeMessage:
    """A text + HTML message (multipart/alternative, quoted-printable), encoded once.

    The one MIME builder: campaign messages (``MessageTemplate``) and one-off mails
    such as the subscribe confirmation are both made here. ``build`` adds the
    per-recipient headers and fills the unsubscribe placeholder, if the parts have one.
    """

    def __init__(self, *, from_: str, subject: str, text: str, html: str, reply_to: str = "",
                 headers: tuple[str, ...] = ()):
        self.sender_name, sender = parseaddr(from_)
        self.sender = _address_ascii(sender)  # SES FromEmailAddress and SMTP MAIL FROM: ASCII (IDNA)
        self.domain = self.sender.rpartition("@")[2]
        self.subject = subject
        self.boundary = f"=_twir_{uuid.uuid4().hex}"
        self.text = _Part("text/plain", text)
        self.html = _Part("text/html", html)
        common = [_ascii_header("From", _address_header(from_))]
        if reply_to:
            common.append(_ascii_header("Reply-To", _address_header(reply_to)))
        common += [
            _ascii_header("Subject", encode_subject(subject)),
            *headers,
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
        ]
        self._common = _head(common)
        self._open = f"\r\n--{self.boundary}\r\n".encode("ascii")
        self._close = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    def build(self, recipient: str, *, url: str = "", headers: list[str] | None = None,
              extra_headers: dict[str, str] | None = None) -> bytes:
        """The complete message for one recipient, CRLF line ends, ready for SES Raw or SMTP."""
        head = [
            f"To: {_address_ascii(recipient)}",
            f"Date: {formatdate(usegmt=True)}",
            f"Message-ID: <{uuid.uuid4().hex}@{self.domain}>",
            *(headers or []),
        ]
        for name, value in (extra_headers or {}).items():
            head.append(f"{name}: {value}")
        return b"".join((
            self._common,
            _head(head),
            b"\r\nThis is a multipart message in MIME format.\r\n",
            self._open, self.text.render(url),
            self._open, self.html.render(url),
            self._close,
        ))


def list_headers(news) -> list[str]:
    """RFC 2369 List-Help/List-Archive and RFC 8058's List-Unsubscribe-Post (the same for everyone).
    List-Unsubscribe itself is per recipient (``MessageTemplate.list_unsubscribe``)."""
    out = [f"List-Help: <{news.site_url}>"]
    if news.archive_url:
        out.append(f"List-Archive: <{news.archive_url}>")
    return out + ["List-Unsubscribe-Post: List-Unsubscribe=One-Click"]


_FEEDBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def feedback_id(campaign_id: int | None, issue_number: int, list_name: str | None, sender: str) -> str:
    """Gmail's Feedback-ID ``campaign:issue:list:sender-id`` (its feedback loop groups complaints
    by each field; the last one names the sender). Fields must not contain ':'.
    Without a campaign (the `render` sample) the campaign field says so."""
    fields = ["sample" if campaign_id is None else str(campaign_id), str(issue_number), list_name or "direct", sender]
    return ":".join(_FEEDBACK_UNSAFE.sub("-", f) for f in fields)


class MessageTemplate:
    """Everything about a campaign's message that does not depend on the recipient."""

    def __init__(self, rendered: Rendered, settings: Settings, *, subject_prefix: str = "",
                 campaign_id: int | None = None, list_name: str | None = None):
        news = settings.newsletter
        self.mime = MimeMessage(from_=news.from_, subject=subject_prefix + rendered.subject, text=rendered.text,
                                html=rendered.html, reply_to=news.reply_to,
                                headers=(_ascii_header("List-Id", _list_id(news.list_id)), *list_headers(news),
                                         "Feedback-ID: " + feedback_id(campaign_id, rendered.issue.number,
                                                                       list_name, news.feedback_sender)))
        self.sender, self.subject = self.mime.sender, self.mime.subject
        self.mailto = news.unsubscribe_mailto
        self.base_url = settings.web.base_url.rstrip("/")
        if not self.mime.text.placeholders or not self.mime.html.placeholders:
            raise TransportError("rendered email lacks the unsubscribe placeholder in its text or HTML part")

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.base_url}/unsubscribe/{token}"

    def list_unsubscribe(self, url: str) -> str:
        # RFC 2369/8058: URLs in angle brackets, HTTPS first; folded after the comma.
        value = f"<{url}>"
        if self.mailto:
            value += f",\r\n <mailto:{self.mailto}?subject=unsubscribe>"
        return value

    def build(self, recipient: str, token: str, *, extra_headers: dict[str, str] | None = None) -> bytes:
        """The campaign message for one recipient: its unsubscribe link in the parts and the headers."""
        url = self.unsubscribe_url(token)
        return self.mime.build(recipient, url=url, headers=[f"List-Unsubscribe: {self.list_unsubscribe(url)}"],
                               extra_headers=extra_headers)

    def sample(self) -> bytes:
        """A complete example message for a placeholder recipient (written by `render`)."""
        return self.build(SAMPLE_RECIPIENT, SAMPLE_TOKEN)


def subject_prefix(settings: Settings, test: bool) -> str:
    return settings.send.test_subject_prefix if test else ""


def template_for(rendered: Rendered, settings: Settings, test: bool, campaign: Campaign | None = None,
                 list_name: str | None = None) -> MessageTemplate:
    """The message of a send (``campaign``) or of one about to be made (``list_name``).

    Here, not in the campaign package, so `check` can build the message `send` would
    without importing the store (a cold `check` is an editor's wait)."""
    if campaign is not None:
        list_name = campaign.list_name
    return MessageTemplate(rendered, settings, subject_prefix=subject_prefix(settings, test),
                           campaign_id=campaign.id if campaign else None, list_name=list_name)
