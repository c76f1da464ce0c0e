"""Issue 11: input the pipeline could never deliver or safely hand back is refused at the door."""

from __future__ import annotations

import csv
import io

import pytest

from mailer.errors import SubscriberError, TransportError
from mailer.models import CampaignStatus
from mailer.sending import campaign as cmp
from mailer.sending.transport import OutboxTransport
from mailer.store.importer import import_file
from tests.fixtures.send import make_rendered
from tests.test_web_browser import shot


def test_add_refuses_a_non_ascii_local_part(store):
    with pytest.raises(SubscriberError, match=r"üser@example.com: the part before @ has non-ASCII .* SMTPUTF8"):
        store.add("üser@example.com")
    assert store.add("user@bücher.de").email == "user@bücher.de"  # a Unicode domain is fine (IDNA)
    assert store.get("üser@example.com") is None  # lookups still accept the spelling


def test_cli_add_refuses_a_non_ascii_local_part_in_one_line(run_cli):
    res = run_cli("subscribers", "add", "ok@example.com", "jürgen@example.de")
    assert res.code != 0 and res.err.count("\n") == 1 and "SMTPUTF8" in res.err and "Traceback" not in res.err
    assert run_cli("subscribers", "count").out.split("\n")[1].split() == ["subscribed", "0"]  # nothing added


def test_import_reports_bad_rows_and_imports_the_rest(store, tmp_path):
    """A NUL (or other control character) in one row is one bad row, also on PostgreSQL."""
    src = tmp_path / "export.csv"
    src.write_bytes("email,name\n"
                    "first@example.com,First\n"
                    "nul@example.com,Broken\x00Name\n"
                    "bell\x07@example.com,Bell\n"
                    "zoë@example.org,Zoë\n"
                    "last@example.com,Last\n".encode("utf-8"))
    report = import_file(store, src)
    assert report.added == 2 and report.bad == 3
    assert report.messages == [
        f"{src}:3: control character U+0000 in the name column",
        f"{src}:4: control character U+0007 in the email column",
        f"{src}:5: zoë@example.org: the part before @ has non-ASCII characters, which Amazon SES cannot "
        "deliver to (no SMTPUTF8)",
    ]
    assert {s.email for s in store.iter_subscribers()} == {"first@example.com", "last@example.com"}


def test_add_refuses_a_control_character_in_a_name(store):
    with pytest.raises(SubscriberError, match="control character"):
        store.add("named@example.com", name="Bad\x00Name")


FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]


def test_export_neutralises_formula_cells_and_imports_back(run_cli, workdir):
    assert run_cli("subscribers", "add", "=cmd|calc@example.com", "--name", "+SUM(1,2)").code == 0
    assert run_cli("subscribers", "add", "--name", "@SUM(A1)", "--", "-2+3@example.com").code == 0
    assert run_cli("subscribers", "add", "plain@example.com", "--name", "Plain").code == 0
    res = run_cli("subscribers", "export")
    rows = list(csv.reader(io.StringIO(res.out)))
    cells = [cell for row in rows[1:] for cell in row[:2]]
    assert "'=cmd|calc@example.com" in cells and "'+SUM(1,2)" in cells and "'-2+3@example.com" in cells
    assert "'@SUM(A1)" in cells and "plain@example.com" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    (workdir / "export.csv").write_text(res.out, encoding="utf-8")
    again = run_cli("subscribers", "import", "export.csv")
    assert again.code == 0 and "0 added" in again.out and "3 unchanged" in again.out, again


@pytest.fixture
def web(start_web, tmp_path):
    return start_web(transport=OutboxTransport(tmp_path / "outbox"), web={"subscribe_rate_per_hour": 1000, "confirmations_per_address": 1000})


@pytest.mark.parametrize("address, why", [
    ("üser@example.com", "ASCII letters before the @"),
    ("=cmd|calc@example.com", "first character"),
    ("+1@example.com", "first character"),
    ("-x@example.com", "first character"),
])
def test_subscribe_form_refuses_with_the_reason(web, address, why):
    page = web.http.post("/subscribe", data={"email": address})
    assert page.status_code == 400 and why in page.text
    assert web.store.get(address) is None if address.isascii() else sum(web.store.count().values()) == 0


def test_send_builds_before_it_records(store, db_settings):
    """An issue that cannot become a message leaves no campaign stuck in `sending`."""
    store.add("reader@example.com")
    broken = make_rendered()
    broken = type(broken)(**{**broken.__dict__, "text": "no unsubscribe link here\n"})
    transport = OutboxTransport(db_settings.outbox_dir)
    with pytest.raises(TransportError, match="unsubscribe placeholder"):
        cmp.start(store, broken, db_settings, transport, list_name="main")
    with pytest.raises(TransportError, match="SMTPUTF8"):
        cmp.start(store, make_rendered(), db_settings, transport, list_name=None,
                  addresses=["jürgen@example.de"], test=True)
    assert store.campaigns() == []
    ok = cmp.start(store, make_rendered(), db_settings, transport, list_name="main")
    assert ok.status is CampaignStatus.SENDING


@pytest.mark.browser
def test_the_form_says_why_on_a_phone(web, browser, tmp_path):
    context = browser.new_context(viewport={"width": 375, "height": 740}, java_script_enabled=False,
                                  device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.goto(f"{web.url}/subscribe")
    # (Chromium itself refuses a non-ASCII local part in an type=email field before submitting.)
    page.get_by_label("Email address").fill("=cmd|calc@example.com")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    reason = page.get_by_text("not =, +, - or @ as the first character")
    assert reason.is_visible()
    box = reason.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375  # readable without scrolling sideways
    shot(page, tmp_path, "subscribe-refused-375.png")
    context.close()
    assert sum(web.store.count().values()) == 0
