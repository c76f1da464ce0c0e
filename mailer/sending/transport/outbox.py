"""The outbox transport: one ``.eml`` file per message, written atomically.

Each file is written under a temporary name and renamed into place
(mailer/atomicfile.py), so a reader (or a crash) never sees half a message:
a file either is complete or does not exist.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from mailer.atomicfile import atomic_open
from mailer.errors import SendingPaused
from mailer.sending.transport.base import Transport

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


class OutboxTransport(Transport):
    name = "outbox"

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self._ready = False

    def _ensure_dir(self) -> None:
        # Created on the first message, so a declined or dry-run send leaves no trace.
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SendingPaused(f"cannot create outbox folder: {exc.strerror}", path=self.dir) from None
        self._ready = True

    def send(self, raw: bytes, *, sender: str, recipient: str, tags: dict[str, str]) -> str:
        if not self._ready:
            self._ensure_dir()
        msg_id = uuid.uuid4().hex[:16]
        prefix = "-".join(_UNSAFE.sub("_", tags[k]) for k in ("issue", "campaign") if k in tags)
        # No recipient in the name: a file name outlives `forget` (the To: header is inside).
        name = f"{prefix + '-' if prefix else ''}{msg_id}.eml"
        final = self.dir / name
        try:
            with atomic_open(final) as fh:
                fh.write(raw)
        except OSError as exc:
            # A full disk or a permission problem affects every message alike.
            raise SendingPaused(f"cannot write to the outbox: {exc.strerror}", path=final) from None
        return f"outbox-{msg_id}"
