"""Per-recipient MIME messages: structure, headers verbatim, parts intact."""

from __future__ import annotations

import datetime as dt
import email
import re
from email import policy
from pathlib import Path

import pytest

from mailer.config import with_overrides
from mailer.sending.message import MessageTemplate
from mailer.models import UNSUBSCRIBE_PLACEHOLDER, Issue, Rendered

LONG_LINE = "<p>" + "Rust ünïcödé 🦀 = café " * 300 + "</p>"


def rendered(subject="This Week in Rust 600") -> Rendered:
    issue = Issue(path=Path("x.md"), title="This Week in Rust 600", number=600, date=dt.date(2025, 5, 21),
                  category="This Week in Rust", body="", body_line=6)
    html = (f"<!doctype html><html><body>\n{LONG_LINE}\n<pre>fn main() {{\n    println!(\"hi\");\n}}</pre>\n"
            f"<a href=\"{UNSUBSCRIBE_PLACEHOLDER}\">Unsubscribe</a>\n</body></html>")
    text = f"Hello =\n  indented line \nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n"
    return Rendered(issue=issue, subject=subject, preheader="", html=html, text=text,
                    web_url="https://this-week-in-rust.org/blog/2025/05/21/this-week-in-rust-600/")


@pytest.fixture
def template(settings):
    s = with_overrides(settings, web={"base_url": "https://twir-mail.example.org/app"},
                       newsletter={"reply_to": "editors@example.org",
                                   "unsubscribe_mailto": "unsubscribe@example.org"})
    return MessageTemplate(rendered(), s)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def content(part) -> str:
    # Wire format is CRLF; compare with the LF text that was rendered.
    return part.get_content().replace("\r\n", "\n")


def test_structure_headers_and_parts(template):
    token = "abc.DEF-123_" + "x" * 60  # long, so a naive policy would fold or encode it
    raw = template.build("reader@example.com", token)
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    for part in (text, html):
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    url = f"https://twir-mail.example.org/app/unsubscribe/{token}"
    assert content(text) == f"Hello =\n  indented line \nUnsubscribe: {url}\n"
    assert LONG_LINE in content(html) and "<pre>fn main() {\n    println!(\"hi\");\n}</pre>" in content(html)
    assert f'href="{url}"' in content(html)
    assert msg["To"] == "reader@example.com"
    assert msg["Reply-To"] == "editors@example.org"
    assert msg["Subject"] == "This Week in Rust 600"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<[0-9a-f]{32}@this-week-in-rust\.org>", msg["Message-ID"])
    assert msg["Date"] and msg["From"] == "This Week in Rust <newsletter@this-week-in-rust.org>"


def test_list_unsubscribe_is_never_mangled(template):
    token = "T" * 120
    raw = template.build("reader@example.com", token)
    header_block = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "=?" not in header_block.replace("Subject: =?", "")  # no RFC 2047 anywhere but a Subject
    unfolded = re.sub(r"\r\n[ \t]", " ", header_block)
    line = next(l for l in unfolded.split("\r\n") if l.startswith("List-Unsubscribe:"))
    assert line == ("List-Unsubscribe: <https://twir-mail.example.org/app/unsubscribe/" + token + ">, "
                    "<mailto:unsubscribe@example.org?subject=unsubscribe>")


def test_each_recipient_differs_only_in_personal_parts(template):
    a = parse(template.build("a@example.com", "tokA"))
    b = parse(template.build("b@example.com", "tokB"))
    assert a["Message-ID"] != b["Message-ID"]
    assert content(a.get_payload()[1]).replace("tokA", "tokB") == content(b.get_payload()[1])


def test_non_ascii_subject_and_idn_recipient(settings):
    t = MessageTemplate(rendered(subject="This Week in Rust 600 🦀 — ünïcödé"), settings, subject_prefix="[TEST] ")
    msg = parse(t.build("reader@bücher.example", "tok"))
    assert str(msg["Subject"]) == "[TEST] This Week in Rust 600 🦀 — ünïcödé"
    assert msg["To"] == "reader@xn--bcher-kva.example"


def test_missing_placeholder_is_refused(settings):
    r = rendered()
    broken = Rendered(r.issue, r.subject, r.preheader, r.html.replace(UNSUBSCRIBE_PLACEHOLDER, "#"), r.text, r.web_url)
    with pytest.raises(Exception, match="unsubscribe placeholder"):
        MessageTemplate(broken, settings)


def test_sample_message_parses(template):
    msg = parse(template.sample())
    assert msg["To"] == "subscriber@example.invalid"
    assert "unsubscribe/SAMPLE-TOKEN" in content(msg.get_payload()[0])


def test_lines_starting_with_from_survive_mbox_software():
    from mailer.sending.message import _qp

    encoded = _qp("Intro\nFrom the team: hello\nNot From here\n")
    assert b"\r\nFrom " not in encoded and encoded.count(b"=46rom ") == 1
    import quopri
    assert quopri.decodestring(encoded).replace(b"\r\n", b"\n") == b"Intro\nFrom the team: hello\nNot From here\n"


def test_non_ascii_names_are_encoded_so_headers_stay_7bit(settings):
    s = with_overrides(settings, newsletter={"from_": "Cette Semaine en Rüst <news@bücher.example>",
                                             "reply_to": "Rédaction <ed@example.org>",
                                             "list_id": "Cette Semaine en Rüst <news.example.org>"})
    t = MessageTemplate(rendered(), s)
    raw = t.build("reader@example.com", "tok")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # SES refuses raw 8-bit header bytes
    assert b"\r\nList-Id: =?utf-8?q?Cette_Semaine_en_R=C3=BCst?= <news.example.org>\r\n" in head
    msg = parse(raw)
    assert str(msg["From"]) == "Cette Semaine en Rüst <news@xn--bcher-kva.example>"
    assert str(msg["Reply-To"]) == "Rédaction <ed@example.org>"
    assert t.sender == "news@xn--bcher-kva.example"


def test_feedback_id_and_list_help_archive(settings):
    from mailer.sending.message import feedback_id

    sample = parse(MessageTemplate(rendered(), settings).sample())
    assert sample["Feedback-ID"] == "sample:600:direct:twir"
    assert sample["List-Help"] == "<https://this-week-in-rust.org>"
    assert sample["List-Archive"] == "<https://this-week-in-rust.org/blog/archives/index.html>"
    s = with_overrides(settings, newsletter={"archive_url": "", "feedback_sender": "twir-eu"})
    msg = parse(MessageTemplate(rendered(), s, campaign_id=12, list_name="main").build("a@example.com", "t"))
    assert msg["Feedback-ID"] == "12:600:main:twir-eu" and msg["List-Archive"] is None
    # A ':' in a field would shift Gmail's fields: list names are made safe.
    assert feedback_id(3, 600, "rust: weekly", "twir") == "3:600:rust--weekly:twir"
