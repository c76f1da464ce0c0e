"""Issue 11: per-purpose keys, token-key rotation, a stable (re-keyable) address-hash key."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

import pytest
import sqlalchemy as sa

from mailer.config import load_settings
from mailer.errors import ConfigError, TokenError
from mailer.keys import AddressHasher
from mailer.models import Status
from mailer.store import open_store
from mailer.store.importer import import_file
from mailer.store.schema import subscribers as S
from mailer.tokens import CONFIRM, UNSUBSCRIBE, Signer

OLD = "rotation-test-secret-0000000001"
NEW = "rotation-test-secret-0000000002"
# Made by twir-mail before key rotation existed (Signer(OLD)): links already in readers' mailboxes.
MAILED_UNSUBSCRIBE = "AQEAAAAAAAAABwAAAAAAAAABAAAAAAAAAAA.5bUqqRtJVDlyCjPiJHxVIw"
MAILED_CONFIRM = "AQIAAAAAAAAABwAAAAAAAAABAAAAAGVT8QA.fKnXscze2a0dl_jq2PdX3Q"


def test_links_mailed_before_rotation_support_still_verify():
    data = Signer(OLD).verify(MAILED_UNSUBSCRIBE, UNSUBSCRIBE)
    assert (data.subscriber_id, data.list_id) == (7, 1)
    assert Signer(OLD).verify(MAILED_CONFIRM, CONFIRM).issued_at == 1_700_000_000


def test_rotation_signs_with_the_newest_and_verifies_the_old():
    rotated = Signer(NEW, old=(OLD,))
    assert rotated.verify(MAILED_UNSUBSCRIBE, UNSUBSCRIBE).subscriber_id == 7
    fresh = rotated.unsubscribe_token(7, 1)
    assert fresh != MAILED_UNSUBSCRIBE and Signer(NEW).verify(fresh, UNSUBSCRIBE).subscriber_id == 7
    with pytest.raises(TokenError):
        Signer(OLD).verify(fresh, UNSUBSCRIBE)  # signed with the new key, not the old one
    with pytest.raises(TokenError):
        Signer(NEW).verify(MAILED_UNSUBSCRIBE, UNSUBSCRIBE)  # the old key retired: its links stop
    with pytest.raises(TokenError):
        rotated.verify(MAILED_UNSUBSCRIBE, CONFIRM)  # purposes stay apart under every key


def test_old_keys_come_from_the_environment_only(workdir):
    s = load_settings(env={"TWIR_MAIL_SECRET_KEY": NEW, "TWIR_MAIL_OLD_SECRET_KEYS": f" {OLD}, older-secret-0000000000 "})
    assert s.old_secret_keys == (OLD, "older-secret-0000000000")
    assert Signer.from_settings(s).verify(MAILED_UNSUBSCRIBE, UNSUBSCRIBE).subscriber_id == 7
    (workdir / "twir-mail.toml").write_text(f'old_secret_keys = "{OLD}"\n')
    with pytest.raises(ConfigError, match="old_secret_keys is a secret: set TWIR_MAIL_OLD_SECRET_KEYS"):
        load_settings(env={})


def test_address_hash_is_derived_not_the_raw_secret(settings):
    s = replace(settings, secret_key=NEW)
    raw = hmac.new(NEW.encode(), b"reader@example.com", hashlib.sha256).hexdigest()
    hasher = AddressHasher(s)
    assert hasher.digest("reader@example.com") != raw
    assert raw in hasher.digests("reader@example.com")  # rows written before still match
    # The token keys are not the address key either.
    assert AddressHasher(replace(s, address_key="a-separate-address-key-01")).digest("x@y.org") != hasher.digest("x@y.org")


def _store(db_settings, **keys):
    return open_store(replace(db_settings, **keys), upgrade=True)


def test_rotating_the_secret_keeps_forgotten_addresses_suppressed(db_settings):
    with _store(db_settings, secret_key=OLD) as store:
        store.add("Gone@Example.com")
        assert store.forget("gone@example.com")
    with _store(db_settings, secret_key=NEW, old_secret_keys=(OLD,)) as store:
        found = store.get("gone@example.com")
        assert found is not None and found.email is None and found.status is Status.UNSUBSCRIBED
        assert store.add("gone@example.com").email is None  # stays forgotten
        assert store.count()["subscribed"] == 0


def test_forgotten_before_keys_were_derived_stays_suppressed(db_settings, tmp_path):
    """A row forgotten by the old code carries HMAC(raw secret): add and import must still match it."""
    with _store(db_settings, secret_key=OLD) as store:
        sub = store.add("legacy@example.com")
        store.forget("legacy@example.com")
        legacy = hmac.new(OLD.encode(), b"legacy@example.com", hashlib.sha256).hexdigest()
        with store.transaction() as conn:
            conn.execute(S.update().where(S.c.id == sub.id).values(email_hash=legacy))
        csv = tmp_path / "back.csv"
        csv.write_text("email\nLegacy@Example.com\n")
        report = import_file(store, csv)
        assert report.added == 0 and report.kept_suppressed + report.unchanged == 1
        assert store.add("legacy@example.com").email is None
        assert store.count()["subscribed"] == 0


def test_rehash_rekeys_known_addresses(db_settings):
    with _store(db_settings, secret_key=OLD) as store:
        store.add("one@example.com")
        store.add("two@example.com")
        store.forget("two@example.com")
    keyed = dict(secret_key=NEW, old_secret_keys=(OLD,), address_key="stable-address-key-000000001")
    with _store(db_settings, **keyed) as store:
        assert store.rehash() == (1, 1)
        assert store.rehash() == (0, 1)  # idempotent
        with store.transaction(write=False) as conn:
            row = conn.execute(sa.select(S.c.email_hash).where(S.c.email_norm == "one@example.com")).scalar_one()
        assert row == store.email_hash("one@example.com")
        assert store.get("two@example.com").email is None  # still matched under its old key


def test_forget_warns_about_the_development_secret(run_cli):
    assert run_cli("subscribers", "add", "reader@example.com").code == 0
    res = run_cli("subscribers", "forget", "reader@example.com")
    assert res.code == 0 and "warning: hashed with the development secret" in res.err
    res = run_cli("subscribers", "add", "other@example.com", env={"TWIR_MAIL_SECRET_KEY": NEW})
    res = run_cli("subscribers", "forget", "other@example.com", env={"TWIR_MAIL_SECRET_KEY": NEW})
    assert res.code == 0 and "warning" not in res.err
