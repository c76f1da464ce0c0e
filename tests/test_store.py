"""Store behaviour on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import given, settings as hsettings, strategies as st

from mailer.errors import StoreError, SubscriberError
from mailer.models import Status
from mailer.store import normalize, open_store


def test_normalize_keeps_display_and_lowercases_identity():
    assert normalize("  Jane.Doe@Example.COM ") == ("Jane.Doe@Example.COM", "jane.doe@example.com")
    assert normalize("user@bücher.de")[1] == "user@xn--bcher-kva.de"


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "two@@example.com", "x@example.com>", "a b@example.com"])
def test_normalize_rejects_bad_addresses(bad):
    with pytest.raises(SubscriberError) as info:
        normalize(bad)
    assert info.value.address == bad.strip()


def test_seeded_lists(store):
    assert store.list_names() == ["main", "preview"]
    assert store.list_id("main") != store.list_id("preview")
    with pytest.raises(SubscriberError, match="unknown list 'nope'"):
        store.list_id("nope")


def test_add_is_case_insensitive_and_keeps_what_was_typed(store):
    first = store.add("Jane@Example.com", name="Jane")
    again = store.add("JANE@example.COM")
    assert first.id == again.id
    assert again.email == "Jane@Example.com" and again.email_norm == "jane@example.com"
    assert again.name == "Jane"
    assert first.created_at.tzinfo is not None
    assert abs(first.created_at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    assert store.count() == {"pending": 0, "subscribed": 1, "unsubscribed": 0, "bounced": 0, "complained": 0}
    assert [h.new_status for h in store.history(first.id)] == [Status.SUBSCRIBED]


def test_address_on_several_lists(store):
    sub = store.add("ed@example.com", list_name="preview")
    store.add("ed@example.com", list_name="main")
    assert store.lists_of(sub.id) == ["main", "preview"]
    assert store.count("preview")["subscribed"] == 1
    assert [s.email for s in store.iter_subscribers("preview")] == ["ed@example.com"]


def test_every_status_change_is_in_history(store):
    sub = store.add("a@example.com", status=Status.PENDING, source="web", reason="subscribe-form")
    assert store.set_status(sub.id, Status.SUBSCRIBED, reason="confirm-link")
    assert not store.set_status(sub.id, Status.SUBSCRIBED, reason="confirm-link")
    assert store.set_status(sub.id, Status.BOUNCED, reason="ses-bounce", detail="550 no such user")
    assert store.set_status(sub.id, Status.COMPLAINED, reason="ses-complaint")
    entries = store.history(sub.id)
    assert [(h.old_status, h.new_status, h.reason) for h in entries] == [
        (None, Status.PENDING, "subscribe-form"),
        (Status.PENDING, Status.SUBSCRIBED, "confirm-link"),
        (Status.SUBSCRIBED, Status.BOUNCED, "ses-bounce"),
        (Status.BOUNCED, Status.COMPLAINED, "ses-complaint"),
    ]
    assert entries[2].detail == "550 no such user"
    assert store.get_by_id(sub.id).status is Status.COMPLAINED


@pytest.mark.parametrize("left", [Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED])
def test_suppression_is_permanent(store, left):
    sub = store.add("gone@example.com")
    store.set_status(sub.id, left, reason="unsubscribe-link")
    assert store.add("gone@example.com").status is left
    assert store.add("gone@example.com", status=Status.PENDING).status is left
    with pytest.raises(SubscriberError, match=f"is {left.value}"):
        store.set_status(sub.id, Status.SUBSCRIBED, reason="cli")
    assert len(store.history(sub.id)) == 2
    back = store.add("gone@example.com", resubscribe=True, reason="resubscribe", detail="asked by mail")
    assert back.status is Status.SUBSCRIBED
    assert store.history(sub.id)[-1].detail == "asked by mail"


def test_subscribed_is_not_demoted_to_pending(store):
    store.add("x@example.com")
    assert store.add("x@example.com", status=Status.PENDING).status is Status.SUBSCRIBED


def test_forget_erases_but_keeps_suppression(store):
    sub = store.add("Private@Example.com", name="Private Person")
    store.set_status(sub.id, Status.BOUNCED, reason="ses-bounce", detail="private@example.com: 550")
    assert store.forget("private@example.com")
    assert not store.forget("private@example.com")
    gone = store.get_by_id(sub.id)
    assert (gone.email, gone.email_norm, gone.name, gone.status) == (None, None, None, Status.BOUNCED)
    assert all(h.detail is None for h in store.history(sub.id))
    assert store.lists_of(sub.id) == []
    again = store.add("private@example.com")
    assert again.id == sub.id and again.status is Status.BOUNCED and again.email is None
    assert list(store.iter_subscribers()) == []
    assert sum(store.count().values()) == 0
    assert store.get("PRIVATE@example.com").id == sub.id


def test_forget_subscribed_unsubscribes(store):
    sub = store.add("s@example.com")
    assert store.forget("s@example.com")
    assert store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    assert store.history(sub.id)[-1].reason == "forget"
    assert not store.forget("never@example.com")


def test_forgotten_can_resubscribe_explicitly(store):
    sub = store.add("back@example.com")
    store.forget("back@example.com")
    with pytest.raises(SubscriberError, match="forgotten"):
        store.set_status(sub.id, Status.SUBSCRIBED, reason="cli", allow_resubscribe=True)
    back = store.add("Back@example.com", resubscribe=True, reason="resubscribe")
    assert (back.id, back.email, back.status) == (sub.id, "Back@example.com", Status.SUBSCRIBED)


def test_iter_and_count_filter_by_status_and_stream_pages(store, monkeypatch):
    monkeypatch.setattr("mailer.store.core.PAGE", 7)
    for i in range(30):
        sub = store.add(f"u{i:02}@example.com")
        if i % 3 == 0:
            store.set_status(sub.id, Status.UNSUBSCRIBED, reason="cli")
    emails = [s.email for s in store.iter_subscribers(status="subscribed")]
    assert emails == [f"u{i:02}@example.com" for i in range(30) if i % 3]
    assert len(list(store.iter_subscribers())) == 30
    assert store.count("main") == {"pending": 0, "subscribed": 20, "unsubscribed": 10, "bounced": 0,
                                   "complained": 0}
    with pytest.raises(SubscriberError, match="unknown status"):
        list(store.iter_subscribers(status="gone"))


def test_bad_reason_and_unknown_id(store):
    with pytest.raises(SubscriberError, match="reason"):
        store.add("r@example.com", reason="x" * 40)
    with pytest.raises(SubscriberError, match="name longer than 200"):
        store.add("r@example.com", name="n" * 201)
    with pytest.raises(SubscriberError, match="no subscriber with id 999"):
        store.set_status(999, Status.UNSUBSCRIBED, reason="cli")


def test_email_hash_is_keyed(store):
    digest = store.email_hash("a@example.com")
    assert len(digest) == 64 and digest != store.email_hash("b@example.com")
    assert "a@example.com" not in digest


def test_non_sqlite_database_must_be_upgraded_explicitly(db_settings, store_url):
    if store_url.startswith("sqlite"):
        with open_store(db_settings) as st:  # embedded default: upgrades itself
            assert st.current_revision() is not None
        return
    with pytest.raises(StoreError, match="not up to date: run `twir-mail db upgrade`"):
        open_store(db_settings)
    with open_store(db_settings, upgrade=True) as st:
        assert st.dialect == "postgresql"
    open_store(db_settings).close()


def test_unreachable_database_is_one_line(settings):
    from mailer.config import with_overrides

    s = with_overrides(settings, database={"url": "postgresql://nobody@127.0.0.1:1/none"})
    with pytest.raises(StoreError) as info:
        open_store(s)
    assert "\n" not in str(info.value) and "cannot open database" in str(info.value)


ADDRESS_CHARS = "abcXYZ09.-_+'!#%&*/=?^`{|}~@ \"(),:;<>[\\]ëłü中\u200b"


@hsettings(max_examples=1500, deadline=None)
@given(st.text(alphabet=ADDRESS_CHARS, max_size=30) | st.emails())
def test_fast_path_agrees_with_email_validator(address):
    def outcome(fn):
        try:
            return fn(address)
        except SubscriberError:
            return "invalid"

    from mailer.store.addresses import full_normalize

    expected = outcome(full_normalize) if address.strip() else "invalid"
    assert outcome(normalize) == expected


@pytest.mark.parametrize("address", ["a@b.c.example.com", "A.B@EXAMPLE.org", "x@bücher.de", "ü@example.com",
                                     "a..b@example.com", ".a@example.com", "a@-example.com", "a@example",
                                     "a@localhost", "a@example.test", "a@1.2.3.4", "a@[1.2.3.4]",
                                     "x" * 65 + "@example.com", "a@" + "b" * 250 + ".com"])
def test_fast_path_agrees_on_edge_cases(address):
    from mailer.store.addresses import full_normalize

    try:
        expected = full_normalize(address)
    except SubscriberError:
        with pytest.raises(SubscriberError):
            normalize(address)
    else:
        assert normalize(address) == expected


def test_public_transaction_commits_or_rolls_back(store):
    import sqlalchemy as sa
    from mailer.store.schema import lists

    with store.transaction() as conn:
        conn.execute(lists.insert().values(name="extra", created_at=dt.datetime.now(dt.timezone.utc)))
    assert "extra" in store.list_names()
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            conn.execute(sa.delete(lists).where(lists.c.name == "extra"))
            raise RuntimeError("boom")
    assert "extra" in store.list_names()
    with pytest.raises(StoreError, match=r"database error \(.+\): ") as info:
        with store.transaction() as conn:
            conn.execute(lists.insert().values(name="main", created_at=dt.datetime.now(dt.timezone.utc)))
    assert "\n" not in str(info.value)
    # It names the database (an operator may have several), its password masked.
    from mailer.config import mask

    assert f"({mask(store.url)})" in str(info.value)


def test_forget_erases_the_address_from_every_delivery(store):

    from mailer.store.schema import deliveries

    sub = store.add("Private@Example.com")
    store.add("keep@example.com")
    store.create_campaign(kind="send", issue_number=1, issue_path="1.md", list_name="main",
                  subject="s", transport="outbox", html_bytes=1)
    store.create_campaign(kind="test", issue_number=1, issue_path="1.md", list_name=None, subject="s",
                  transport="outbox", html_bytes=1, addresses=["PRIVATE@example.com", "keep@example.com"])
    with store.transaction() as conn:  # what an SMTP server answers quotes the address
        conn.execute(deliveries.update().values(error=sa.literal("550 <") + deliveries.c.email + ">: no such user"))
    assert store.forget("private@example.com")
    with store.transaction(write=False) as conn:
        left = sorted((r.subscriber_id == sub.id, r.email or "", r.error or "") for r in conn.execute(
            sa.select(deliveries.c.subscriber_id, deliveries.c.email, deliveries.c.error)))
    assert left == [(False, "", ""), (False, "keep@example.com", "550 <keep@example.com>: no such user"),
                    (False, "keep@example.com", "550 <keep@example.com>: no such user"), (True, "", "")]


def test_silent_database_server_times_out_in_one_line(settings, monkeypatch):
    """A server that accepts the connection but never answers must not hang a command."""
    import socket
    import time

    from mailer.config import with_overrides

    monkeypatch.setattr("mailer.store.engine.CONNECT_TIMEOUT_S", 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        s = with_overrides(settings, database={"url": f"postgresql://nobody@127.0.0.1:{port}/none"})
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            open_store(s)
    assert time.monotonic() - started < 15
    assert "\n" not in str(info.value) and "cannot open database" in str(info.value)
