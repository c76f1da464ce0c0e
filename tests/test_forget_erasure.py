"""Issue 11: after `forget`, the address is in no table, no database file or WAL, no outbox file name."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mailer.models import CampaignKind, FeedbackKind
from mailer.sending.transport.outbox import OutboxTransport
from mailer.store import open_store
from mailer.store.engine import utcnow
from mailer.store.schema import deliveries, metadata

TYPED = "Reader@Bücher.de"
# Every spelling the address could leave behind (lower-cased; compared case-insensitively).
SPELLINGS = ["reader@bücher.de", "reader@xn--bcher-kva.de", "reader@b\\u00fccher"]


def _seed(store) -> None:
    sub = store.add(TYPED, name="Reader Person", detail=f"asked by {TYPED} at the conference")
    for i in range(20):  # other people's rows around it, so its pages are reused, not rewritten
        store.add(f"neighbour{i}@example.org", name=f"Neighbour {i}")
    store.create_campaign(kind=CampaignKind.SEND, issue_number=600, issue_path="600.md", list_name="main",
                          subject="TWIR 600", transport="outbox", html_bytes=1)
    # `send --to` in the other IDN spelling: a ledger row without a subscriber id.
    store.create_campaign(kind=CampaignKind.TEST, issue_number=600, issue_path="600.md", list_name=None,
                          subject="[TEST] TWIR 600", transport="outbox", html_bytes=1,
                          addresses=["READER@xn--bcher-kva.de"])
    with store.transaction() as conn:
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == sub.id)
                     .values(error="550 5.1.1 <Reader@Bücher.de>: mailbox full"))
    # SES feedback about the address that matched no subscriber row (e.g. a test send's bounce).
    store.log_feedback(None, FeedbackKind.BOUNCE_PERMANENT, "ses-1",
                       "smtp; 550 5.1.1 <reader@xn--bcher-kva.de>... User unknown", utcnow())
    store.log_feedback(None, FeedbackKind.COMPLAINT, "ses-2", "complaint from someone@else.example", utcnow())


def _table_text(store) -> str:
    with store.transaction(write=False) as conn:
        return "\n".join(str(tuple(row)) for table in metadata.sorted_tables
                         for row in conn.execute(sa.select(table))).lower()


def test_forget_leaves_the_address_in_no_table(store):
    _seed(store)
    before = _table_text(store)
    assert "reader@bücher.de" in before and "reader@xn--bcher-kva.de" in before
    assert store.forget("reader@BÜCHER.de")
    after = _table_text(store)
    assert not [s for s in SPELLINGS if s in after], after
    assert "reader person" not in after
    assert "someone@else.example" in after  # other people's feedback stays


def _raw_files(db: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes().lower() for p in db.parent.glob(db.name + "*")}


def test_forget_leaves_nothing_in_the_sqlite_files_while_serve_has_them_open(settings, tmp_path):
    from mailer.config import with_overrides

    db = tmp_path / "erase.db"
    s = with_overrides(settings, database={"url": f"sqlite:///{db}"})
    with open_store(s, upgrade=True) as store, open_store(s) as serving:
        _seed(store)
        serving.count()  # the web app's pooled connection stays open (and the WAL with it)
        found = _raw_files(db)
        assert any("bücher".encode() in data or b"xn--bcher-kva" in data for data in found.values())
        assert store.forget(TYPED)
        serving.count()
        leftovers = {name: [s for s in ("reader@bücher.de".encode(), b"reader@xn--bcher-kva.de")
                            if s in data] for name, data in _raw_files(db).items()}
        assert not any(leftovers.values()), leftovers
        assert b"reader person" not in b"".join(_raw_files(db).values())


def test_outbox_file_names_do_not_name_the_recipient(tmp_path):
    outbox = OutboxTransport(tmp_path / "outbox")
    outbox.send(b"To: Reader@B\xc3\xbccher.de\r\n\r\nhi\r\n", sender="twir@example.org", recipient=TYPED,
                tags={"issue": "600", "campaign": "3"})
    names = [p.name.lower() for p in (tmp_path / "outbox").iterdir()]
    assert len(names) == 1 and names[0].startswith("600-3-") and names[0].endswith(".eml")
    assert "reader" not in names[0] and "bcher" not in names[0]
