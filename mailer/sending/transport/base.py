"""The transport interface and the null sink."""

from __future__ import annotations

import itertools
import re
import threading

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID of a raw message (looked up in the header block only)."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    m = _MESSAGE_ID.search(head)
    return m.group(1).decode("ascii", "replace") if m else None


class Transport:
    """Base class; subclasses implement ``send``. Must be thread-safe."""

    name = "transport"
    # Local transports need no pacing and no real secret.
    local = True

    def send(self, raw: bytes, *, sender: str, recipient: str, tags: dict[str, str]) -> str:
        """Hand one message over; return its transport message id."""
        raise NotImplementedError

    def account_rate(self) -> float | None:
        """Messages per second the account allows, if the transport knows (else None)."""
        return None

    def check(self) -> None:
        """Raise a TransportError if sending cannot work at all (credentials, endpoint)."""

    def account(self) -> dict | None:
        """The provider's own account state (SES GetAccount), if the transport has one to read."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullTransport(Transport):
    """Accepts and discards messages: dry runs and benchmarks."""

    def __init__(self, name: str = "null"):
        self.name = name
        self.count = 0
        self.bytes = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, raw: bytes, *, sender: str, recipient: str, tags: dict[str, str]) -> str:
        with self._lock:
            self.count += 1
            self.bytes += len(raw)
        return f"null-{next(self._ids)}"
