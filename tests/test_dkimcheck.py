"""`ses check-dkim`: which headers the DKIM signatures of a received message cover.

Messages are the real per-recipient MIME built by MessageTemplate, signed with
dkimpy (as SES's Easy DKIM and amazonses.com would sign them) and verified with
a DNS answer built from the same key, so the h= lists are genuine."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailer.aws.dkim import DkimCheckError, check_file, check_message
from mailer.sending.message import MessageTemplate
from mailer.models import UNSUBSCRIBE_PLACEHOLDER, Issue, Rendered

DOMAIN = "this-week-in-rust.org"


@pytest.fixture(scope="module")
def keys():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(pub)


def message(settings) -> bytes:
    issue = Issue(path=Path("x.md"), title="This Week in Rust 600", number=600, date=dt.date(2026, 11, 25),
                  category="This Week in Rust", body="", body_line=6)
    rendered = Rendered(issue=issue, subject="This Week in Rust 600", preheader="",
                        html=f"<p>Hi <a href='{UNSUBSCRIBE_PLACEHOLDER}'>unsubscribe</a></p>",
                        text=f"Hi\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n",
                        web_url="https://this-week-in-rust.org/blog/2026/11/25/this-week-in-rust-600/")
    return MessageTemplate(rendered, settings).build("reader@example.com", "TOKEN123")


def sign(raw: bytes, pem: bytes, domain: str, headers: list[bytes]) -> bytes:
    sig = dkim.sign(raw, b"sel1", domain.encode(), pem, include_headers=headers)
    return sig + raw


BASE = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"]


def test_aligned_signature_covering_both_headers_passes(settings, keys, tmp_path):
    pem, txt = keys
    raw = message(settings)
    assert b"List-Unsubscribe-Post" in raw
    signed = sign(sign(raw, pem, DOMAIN, BASE + [b"list-unsubscribe", b"list-unsubscribe-post"]),
                  pem, "amazonses.com", BASE)
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: txt)  # a genuine signature
    path = tmp_path / "received.eml"
    path.write_bytes(signed)
    report = check_file(path)
    assert report.ok and report.from_domain == DOMAIN
    assert {s.domain for s in report.signatures} == {DOMAIN, "amazonses.com"}
    assert report.present == ["list-unsubscribe", "list-unsubscribe-post"]


def test_only_unaligned_signature_covers_them(settings, keys):
    pem, _ = keys
    raw = message(settings)
    signed = sign(sign(raw, pem, DOMAIN, BASE), pem, "amazonses.com",
                  BASE + [b"list-unsubscribe", b"list-unsubscribe-post"])
    report = check_message(signed)
    assert not report.ok
    [ours] = [s for s in report.signatures if s.domain == DOMAIN]
    assert not ours.covers("List-Unsubscribe")


def test_cli_reports_and_fails_with_one_line(settings, keys, run_cli, workdir):
    pem, _ = keys
    raw = message(settings)
    good, bad = workdir / "good.eml", workdir / "bad.eml"
    good.write_bytes(sign(raw, pem, DOMAIN, BASE + [b"list-unsubscribe", b"list-unsubscribe-post"]))
    bad.write_bytes(sign(raw, pem, DOMAIN, BASE + [b"list-unsubscribe"]))
    ok = run_cli("ses", "check-dkim", "good.eml")
    assert ok.code == 0, ok.err
    assert f"DKIM d={DOMAIN} s=sel1 (aligned): list-unsubscribe signed, list-unsubscribe-post signed" in ok.out
    res = run_cli("ses", "check-dkim", "bad.eml")
    assert res.code == 1
    assert "list-unsubscribe-post NOT signed" in res.out
    assert res.err.strip() == (f"error: bad.eml: no DKIM signature aligned with {DOMAIN} covers "
                               "list-unsubscribe and list-unsubscribe-post")
    missing = run_cli("ses", "check-dkim", "nope.eml")
    assert missing.code == 1 and missing.err.startswith("error: nope.eml: cannot read")


def test_not_an_email(tmp_path):
    path = tmp_path / "x.eml"
    path.write_bytes(b"hello\n")
    with pytest.raises(DkimCheckError, match="no From address"):
        check_file(path)
