"""Signed tokens: round trip, tampering, purpose separation, expiry."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mailer.errors import TokenError
from mailer.tokens import CONFIRM, UNSUBSCRIBE, Signer

SECRET = "s" * 32


def test_round_trip_and_no_address_inside():
    signer = Signer(SECRET)
    token = signer.unsubscribe_token(12345, 2)
    data = signer.verify(token, UNSUBSCRIBE)
    assert (data.subscriber_id, data.list_id) == (12345, 2)
    assert token == signer.unsubscribe_token(12345, 2), "unsubscribe tokens are stable"
    assert all(c.isalnum() or c in "-_." for c in token) and len(token) < 60


def test_other_secret_or_purpose_is_rejected():
    token = Signer(SECRET).unsubscribe_token(1, 1)
    with pytest.raises(TokenError):
        Signer("t" * 32).verify(token, UNSUBSCRIBE)
    with pytest.raises(TokenError):
        Signer(SECRET).verify(token, CONFIRM)


def test_confirm_tokens_expire():
    signer = Signer(SECRET)
    token = signer.make(CONFIRM, 7, 1, issued_at=1_000)
    assert signer.verify(token, CONFIRM, max_age=60, now=1_030).subscriber_id == 7
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, CONFIRM, max_age=60, now=1_061)


def test_a_token_no_database_row_or_clock_could_match_is_invalid():
    """Signed, but naming an id past a signed 64-bit integer (the lookup raised OverflowError:
    a 500 with a traceback) or issued in the future (it would never expire)."""
    signer = Signer(SECRET)
    for sid, lid in ((2**63, 1), (1, 2**64 - 1)):
        with pytest.raises(TokenError, match="invalid"):
            signer.verify(signer.unsubscribe_token(sid, lid), UNSUBSCRIBE)
    assert signer.verify(signer.unsubscribe_token(2**63 - 1, 1), UNSUBSCRIBE).subscriber_id == 2**63 - 1
    ahead = signer.make(CONFIRM, 7, 1, issued_at=10_000)
    with pytest.raises(TokenError, match="invalid"):
        signer.verify(ahead, CONFIRM, max_age=60, now=10_000 - 301)
    assert signer.verify(ahead, CONFIRM, max_age=60, now=10_000 - 299).subscriber_id == 7  # clock skew


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1],
    lambda t: t[:10],
    lambda t: t.replace(".", ""),
    lambda t: "A" + t[1:] if t[0] != "A" else "B" + t[1:],
    lambda t: t + "A",
    lambda t: "",
    lambda t: "....",
    lambda t: "%%%.***",
])
def test_tampered_tokens_are_rejected(mangle):
    signer = Signer(SECRET)
    with pytest.raises(TokenError):
        signer.verify(mangle(signer.unsubscribe_token(99, 1)), UNSUBSCRIBE)


@given(st.text(max_size=80))
def test_arbitrary_text_never_verifies_or_crashes(text):
    with pytest.raises(TokenError):
        Signer(SECRET).verify(text, UNSUBSCRIBE)


def test_only_the_issued_spelling_verifies():
    from mailer.tokens import Signer, UNSUBSCRIBE
    signer = Signer("s" * 32)
    token = signer.unsubscribe_token(42, 1)
    assert signer.verify(token, UNSUBSCRIBE).subscriber_id == 42
    body, tag = token.split(".")
    last = tag[-1]
    # Same decoded bytes, other spellings: padding added, or unused low bits flipped.
    variants = [token + "=", token + "==", f"{body}.{tag}="]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants += [f"{body}.{tag[:-1]}{c}" for c in alphabet if c != last]
    for v in variants:
        with pytest.raises(TokenError):
            signer.verify(v, UNSUBSCRIBE)
