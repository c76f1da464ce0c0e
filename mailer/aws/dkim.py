"""Is ``List-Unsubscribe`` covered by the DKIM signature of a received message?

Gmail and Yahoo honour one-click unsubscribe (RFC 8058) only when both
``List-Unsubscribe`` and ``List-Unsubscribe-Post`` are in the ``h=`` list of a
valid DKIM signature aligned with the From domain. This reads the signatures
of a message saved from a mailbox ("Show original" / "Download message") and
says which headers each one covers. It does not verify the signature itself:
the receiving provider has done that (see its Authentication-Results header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr
from pathlib import Path

from mailer.errors import TwirMailError

REQUIRED = ("list-unsubscribe", "list-unsubscribe-post")


class DkimCheckError(TwirMailError):
    """The message has no aligned DKIM signature covering the unsubscribe headers."""


@dataclass
class Signature:
    domain: str
    selector: str
    headers: list[str]            # the h= list, lower-case, in order

    def covers(self, name: str) -> bool:
        return name.lower() in self.headers

    def aligned_with(self, from_domain: str) -> bool:
        """Relaxed DMARC alignment: the same domain or a parent of it (organisational domain)."""
        d = self.domain.lower()
        return from_domain == d or from_domain.endswith("." + d)


@dataclass
class Report:
    from_domain: str
    signatures: list[Signature]
    present: list[str]              # which of REQUIRED the message carries at all
    authentication_results: list[str]

    @property
    def ok(self) -> bool:
        return any(s.aligned_with(self.from_domain) and all(s.covers(h) for h in REQUIRED) for s in self.signatures)


def parse_tags(value: str) -> dict[str, str]:
    """The tag=value list of a DKIM-Signature header (RFC 6376 3.2), whitespace removed."""
    tags = {}
    for part in re.sub(r"\s+", "", value).split(";"):
        if "=" in part:
            key, _, val = part.partition("=")
            tags[key] = val
    return tags


def check_message(raw: bytes, path: str | Path | None = None) -> Report:
    msg = BytesHeaderParser(policy=compat32).parsebytes(raw)
    from_addr = parseaddr(str(msg.get("From", "")))[1]
    if "@" not in from_addr:
        raise DkimCheckError("no From address: is this a saved email message (.eml)?", path=path)
    sigs = []
    for header in msg.get_all("DKIM-Signature") or []:
        tags = parse_tags(str(header))
        sigs.append(Signature(tags.get("d", ""), tags.get("s", ""),
                              [h.lower() for h in tags.get("h", "").split(":") if h]))
    present = [h for h in REQUIRED if msg.get(h) is not None]
    results = [re.sub(r"\s+", " ", str(v)).strip() for v in msg.get_all("Authentication-Results") or []]
    return Report(from_addr.rpartition("@")[2].lower(), sigs, present, results)


def check_file(path: str | Path) -> Report:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DkimCheckError(f"cannot read: {exc.strerror}", path=path) from None
    return check_message(raw, path)
