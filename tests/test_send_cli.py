"""`twir-mail send` as a user runs it: real subprocesses, SIGKILL/SIGINT, concurrent resumes."""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from mailer.sending import campaign as cmp

from mailer.issue.parse import parse_issue
from mailer.issue.render import render_issue
from mailer.store.schema import deliveries as D
from mailer.sending.transport import open_transport
from tests.fixtures.send import ISSUE, add_subscribers, cli_env, outbox_recipients, spawn

WORKERS = 4


def run(*args, env, cwd, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "mailer", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc


def wait_for_files(outbox, n: int, proc, timeout=60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"send ended early: {proc.returncode} {proc.stderr.read()}")
        if outbox.is_dir() and sum(1 for _ in outbox.glob("*.eml")) >= n:
            return
        time.sleep(0.005)
    raise AssertionError("send did not progress")


def test_send_report_refusal_and_campaigns(store, store_url, tmp_path):
    subs = add_subscribers(store, 5)
    add_subscribers(store, 1, list_name="preview", prefix="editor")
    outbox = tmp_path / "outbox"
    env = cli_env(store_url, outbox)
    test = run("send", str(ISSUE), "--to", "preview", "--to", "me@example.org", env=env, cwd=tmp_path)
    assert test.returncode == 0, test.stderr
    bad = run("send", str(ISSUE), "--to", "not-an-address", env=env, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: invalid address 'not-an-address'")
    assert "[TEST] This Week in Rust 700" in test.stdout and "2 recipients" in test.stdout
    real = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    assert "5 recipients" in real.stdout and "sent 5, failed 0, skipped 0, unknown 0, queued 0" in real.stdout
    again = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert again.returncode == 1 and "already sent to list 'main'" in again.stderr
    assert "Traceback" not in again.stderr and "subject:" not in again.stdout
    assert sorted(outbox_recipients(outbox)) == sorted([s.email for s in subs] + ["editor000@example.com",
                                                                                   "me@example.org"])
    listing = run("campaigns", env=env, cwd=tmp_path)
    assert listing.returncode == 0
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [("test", "700", "preview", "done", "2"),
                                                            ("send", "700", "main", "done", "5")]
    shown = run("campaigns", "show", "2", env=env, cwd=tmp_path)
    assert "sent 5, failed 0" in shown.stdout
    assert run("campaigns", "show", "99", env=env, cwd=tmp_path).stderr.strip() == "error: no campaign with id 99"


def test_confirmation_no_and_dry_run_record_nothing(store, store_url, tmp_path):
    add_subscribers(store, 3)
    env = cli_env(store_url, tmp_path / "outbox")
    no = subprocess.run([sys.executable, "-m", "mailer", "send", str(ISSUE)], input="n\n", cwd=tmp_path,
                        env=env, capture_output=True, text=True, timeout=60)
    assert no.returncode == 4 and "send it?" in no.stderr and no.stderr.strip().endswith("not sent")
    assert "error" not in no.stderr
    dry = run("send", str(ISSUE), "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0 and "built 3 message(s)" in dry.stdout
    eof = run("send", str(ISSUE), env=env, cwd=tmp_path)  # no answer at all (stdin closed): a no too
    assert eof.returncode == 4 and eof.stderr.strip().endswith("not sent")
    assert store.campaigns() == [] and not (tmp_path / "outbox").exists()


def test_test_send_counts_each_recipient_once(store, store_url, tmp_path):
    add_subscribers(store, 2, list_name="preview", prefix="editor")
    env = cli_env(store_url, tmp_path / "outbox")
    # editor000 is on the preview list, and typed twice more in other spellings: 3 people, not 5.
    args = ("--to", "preview", "--to", "Editor000@Example.com", "--to", "editor000@example.com",
            "--to", "me@example.org")
    dry = run("send", str(ISSUE), *args, "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "(3 recipients)" in dry.stdout and "built 3 message(s)" in dry.stdout
    sent = run("send", str(ISSUE), *args, env=env, cwd=tmp_path)
    assert "(3 recipients)" in sent.stdout and "sent 3, failed 0" in sent.stdout, sent.stderr
    assert sorted(outbox_recipients(tmp_path / "outbox")) == [
        "editor000@example.com", "editor001@example.com", "me@example.org"]


def test_to_and_list_are_checked_before_the_issue(store, store_url, tmp_path):
    # An issue that cannot even be read: the option mistakes must be what is reported.
    missing = str(tmp_path / "no-such-issue.md")
    env = cli_env(store_url, tmp_path / "outbox")
    typo = run("send", missing, "--to", "previw", env=env, cwd=tmp_path)
    assert typo.returncode == 2 and "did you mean `--to preview`?" in typo.stderr, typo.stderr
    empty = run("send", missing, "--to", "preview", env=env, cwd=tmp_path)
    assert empty.returncode == 1, empty.stderr
    [line] = empty.stderr.strip().splitlines()
    assert "preview list has no subscribed addresses" in line
    assert "twir-mail subscribers add ADDR --list preview" in line and "twir-mail init" in line
    nolist = run("send", missing, "--list", "mian", env=env, cwd=tmp_path)
    assert nolist.returncode == 1 and "unknown list 'mian'" in nolist.stderr, nolist.stderr
    assert store.campaigns() == []


@pytest.mark.parametrize("args", [("campaigns", "show"), ("report", "--campaign"), ("send", "--resume")])
def test_a_campaign_id_past_64_bits_is_not_found(run_cli, args):
    # SQLite cannot bind it: "unexpected OverflowError".
    r = run_cli(*args, "99999999999999999999")
    assert r.code == 1 and r.err.strip().splitlines()[-1] == "error: no campaign with id 99999999999999999999", r.err


def test_resend_unknown_without_resume_is_a_usage_error(run_cli):
    r = run_cli("send", str(ISSUE), "--resend-unknown", "--dry-run")
    assert r.code == 2 and "--resend-unknown goes with --resume" in r.err and "subject:" not in r.out, r.err


@pytest.mark.parametrize("rate", ["nan", "inf"])
def test_rate_must_be_a_finite_number(run_cli, rate):
    # click's FloatRange lets nan through: it ended as "unexpected ValueError" after the summary.
    r = run_cli("send", str(ISSUE), "--dry-run", "--force", "--rate", rate)
    assert r.code == 2 and f"'{rate}' is not a number of messages per second" in r.err, r.err
    assert "unexpected" not in r.err and "subject:" not in r.out


def test_dry_run_summarises_exactly_what_the_send_would_do(store, store_url, tmp_path):
    add_subscribers(store, 3)
    add_subscribers(store, 2, list_name="preview", prefix="editor")
    env = cli_env(store_url, tmp_path / "outbox")
    adhoc = run("send", str(ISSUE), "--to", "me@example.org", "--dry-run", env=env, cwd=tmp_path)
    assert adhoc.returncode == 0, adhoc.stderr
    # the test addresses, not the main list; summary first, as for the real send
    assert "subject:    [TEST] This Week in Rust 700" in adhoc.stdout
    assert "to:         me@example.org (1 recipient)" in adhoc.stdout and "built 1 message(s)" in adhoc.stdout
    both = run("send", str(ISSUE), "--to", "preview", "--to", "me@example.org", "--dry-run", env=env, cwd=tmp_path)
    assert "(3 recipients)" in both.stdout and "built 3 message(s)" in both.stdout
    real = run("send", str(ISSUE), "--dry-run", env=env, cwd=tmp_path)
    assert "to:         list main (3 recipients)" in real.stdout and "built 3 message(s)" in real.stdout
    assert run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path).returncode == 0
    again = run("send", str(ISSUE), "--dry-run", env=env, cwd=tmp_path)  # the real send would be refused
    assert again.returncode == 1 and "already sent to list 'main'" in again.stderr
    env.update(TWIR_MAIL_TRANSPORT_KIND="ses")  # so would one without a real secret
    ses = run("send", str(ISSUE), "--to", "preview", "--dry-run", env=env, cwd=tmp_path)
    assert ses.returncode == 2 and "TWIR_MAIL_SECRET_KEY" in ses.stderr
    assert len(store.campaigns()) == 1 and len(outbox_recipients(tmp_path / "outbox")) == 3


def test_check_errors_stop_the_send_unless_forced(store, store_url, tmp_path):
    add_subscribers(store, 2)
    draft = tmp_path / "draft-700.md"
    draft.write_text(ISSUE.read_text(encoding="utf-8") + "\n* [Reddit](REDDIT_LINK_HERE)\n", encoding="utf-8")
    outbox = tmp_path / "outbox"
    env = cli_env(store_url, outbox)
    for args in (("--yes",), ("--dry-run",)):
        r = run("send", str(draft), *args, env=env, cwd=tmp_path)
        assert r.returncode == 1 and "draft placeholder REDDIT_LINK_HERE" in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1] == f"error: {draft}: 1 error(s) in the issue: fix them or send " \
                                                  "with --force"
        assert "subject:" not in r.stdout
    assert store.campaigns() == [] and not outbox.exists()
    # A test send goes out despite the errors (printed), so the editor sees the draft in their inbox.
    test = run("send", str(draft), "--to", "me@example.org", env=env, cwd=tmp_path)
    assert test.returncode == 0, test.stderr
    assert "draft placeholder REDDIT_LINK_HERE left in the issue [placeholder]" in test.stderr
    assert "test send despite 1 error(s)" in test.stderr and "[TEST] " in test.stdout
    assert outbox_recipients(outbox) == ["me@example.org"]
    assert [c.kind for c in store.campaigns()] == ["test"]
    for path in outbox.glob("*.eml"):
        path.unlink()
    forced = run("send", str(draft), "--yes", "--force", env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "draft placeholder" in forced.stderr and "sent 2, failed 0" in forced.stdout
    assert sorted(outbox_recipients(outbox)) == ["reader000@example.com", "reader001@example.com"]


def test_ses_and_smtp_refused_without_secret(store, store_url, tmp_path):
    add_subscribers(store, 1)
    env = cli_env(store_url, tmp_path / "o", TWIR_MAIL_TRANSPORT_KIND="ses")
    r = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "TWIR_MAIL_SECRET_KEY" in r.stderr
    env.update(TWIR_MAIL_SECRET_KEY="x" * 32)
    r = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "base_url" in r.stderr
    assert store.campaigns() == []


def test_bad_inputs_are_one_line_errors_and_record_nothing(store, store_url, tmp_path, moto):
    add_subscribers(store, 2)
    env = cli_env(store_url, tmp_path / "o", TWIR_MAIL_TRANSPORT_KIND="ses", TWIR_MAIL_SES_ENDPOINT_URL=moto.url,
                  TWIR_MAIL_SECRET_KEY="x" * 32, TWIR_MAIL_WEB_BASE_URL="https://mail.example.org",
                  AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    down = dict(env, TWIR_MAIL_SES_ENDPOINT_URL="http://127.0.0.1:9")
    cases = [
        (("send", str(tmp_path / "nope.md"), "--yes"), env, 1, "nope.md: no such file"),
        (("send", str(ISSUE), "--list", "nosuch", "--yes"), env, 1, "unknown list 'nosuch'"),
        (("send", str(ISSUE), "--to", "me@@example", "--yes"), env, 1, "invalid address 'me@@example'"),
        # with --rate no quota is needed, yet the endpoint and credentials are tried before anything is recorded
        (("send", str(ISSUE), "--yes", "--rate", "5"), down, 1, "cannot send through ses: cannot reach SES"),
        (("send", str(ISSUE), "--yes", "--rate", "5"), dict(env, AWS_PROFILE="nope"), 2, "profile (nope)"),
    ]
    for args, e, code, message in cases:
        r = run(*args, env=e, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert lines[-1].startswith("error: ") and message in lines[-1], (args, r.stderr)
        assert "Traceback" not in r.stderr and "unexpected" not in r.stderr
    with moto.checking_credentials():
        r = run("send", str(ISSUE), "--yes", "--rate", "5", env=env, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(
        "error: cannot send through ses: SES InvalidClientTokenId"), r.stderr
    assert store.campaigns() == [] and moto.sent_messages() == []


def test_least_privilege_credentials_send_with_a_given_rate(store, store_url, tmp_path, moto):
    add_subscribers(store, 2)
    env = cli_env(store_url, tmp_path / "o", TWIR_MAIL_TRANSPORT_KIND="ses", TWIR_MAIL_SES_ENDPOINT_URL=moto.url,
                  TWIR_MAIL_SECRET_KEY="x" * 32, TWIR_MAIL_WEB_BASE_URL="https://mail.example.org",
                  **moto.sender_only_keys())
    env.pop("AWS_SESSION_TOKEN", None)  # a long-term IAM user key, no session
    with moto.checking_credentials():  # moto now enforces the IAM policy: SendEmail only
        no_rate = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
        with_rate = run("send", str(ISSUE), "--yes", "--rate", "20", env=env, cwd=tmp_path)
    assert no_rate.returncode == 1 and no_rate.stderr.strip().splitlines()[-1] == (
        "error: cannot send through ses: SES AccessDenied: these credentials may not read the sending quota; "
        "allow ses:GetAccount or ses:GetSendQuota, or give --rate or [ses] rate")
    assert with_rate.returncode == 0, with_rate.stderr
    assert sorted(m["destinations"][0] for m in moto.sent_messages()) == [
        "reader000@example.com", "reader001@example.com"]


def test_send_through_moto_via_environment(store, store_url, tmp_path, moto):
    """Acceptance: the contract's environment names alone drive a test send and a real send."""
    import boto3
    import email
    import re
    from email import policy

    from mailer.tokens import UNSUBSCRIBE, Signer

    subs = add_subscribers(store, 6)
    add_subscribers(store, 1, list_name="preview", prefix="editor")
    # The sender is verified only in eu-west-1: a send that ignored TWIR_MAIL_SES_REGION would be rejected.
    boto3.client("ses", region_name="eu-west-1", endpoint_url=moto.url).verify_domain_identity(
        Domain="twir-eu.example")
    base = "https://mail.example.org/" + "a-long-path-segment/" * 8 + "twir"  # long enough for a naive fold
    secret = "acceptance-secret-0123456789"
    outbox = tmp_path / "outbox-from-env"
    env = cli_env(store_url, outbox, TWIR_MAIL_NEWSLETTER_FROM="TWIR Editors <newsletter@twir-eu.example>",
                  TWIR_MAIL_NEWSLETTER_REPLY_TO="editors@twir-eu.example", TWIR_MAIL_TRANSPORT_KIND="outbox",
                  TWIR_MAIL_SES_ENDPOINT_URL=moto.url, TWIR_MAIL_SES_REGION="eu-west-1",
                  TWIR_MAIL_SECRET_KEY=secret, TWIR_MAIL_WEB_BASE_URL=base,
                  AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    assert env["TWIR_MAIL_OUTBOX_DIR"] == str(outbox) and env["TWIR_MAIL_DATABASE_URL"] == store_url
    test = run("send", str(ISSUE), "--to", "preview", env=env, cwd=tmp_path)
    assert test.returncode == 0, test.stderr
    assert outbox_recipients(outbox) == ["editor000@example.com"]
    env["TWIR_MAIL_TRANSPORT_KIND"] = "ses"
    r = run("send", str(ISSUE), "--yes", "--rate", "50", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "transport:  ses" in r.stdout and "50 messages/s" in r.stdout and "sent 6, failed 0" in r.stdout
    assert "warning: [newsletter] postal_address is empty" in r.stderr
    sent = moto.sent_messages()
    assert sorted(m["destinations"][0] for m in sent) == [s.email for s in subs]
    signer, list_id, ids = Signer(secret), store.list_id("main"), {s.email: s.id for s in subs}
    for m in sent:
        raw = m["raw_data"]
        head = raw.split("\r\n\r\n", 1)[0]
        assert "=?" not in head and "\n" not in head.replace("\r\n", "")  # nothing encoded, CRLF only
        lines = dict(line.split(": ", 1) for line in head.split("\r\n"))
        to = lines["To"]
        assert lines["From"] == "TWIR Editors <newsletter@twir-eu.example>"
        assert lines["Reply-To"] == "editors@twir-eu.example" and set(m["destinations"]) == {to}
        assert lines["Subject"] == "This Week in Rust 700"
        assert lines["List-Id"] == "This Week in Rust <newsletter.this-week-in-rust.org>"
        assert lines["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert lines["Feedback-ID"] == "2:700:main:twir"  # campaign 2 (1 was the test send)
        assert re.fullmatch(r"<[0-9a-f]{32}@twir-eu\.example>", lines["Message-ID"])
        assert email.utils.parsedate_to_datetime(lines["Date"]).tzinfo is not None
        url = re.fullmatch(r"<(\S+)>", lines["List-Unsubscribe"]).group(1)  # verbatim, on one line
        assert url.startswith(base + "/unsubscribe/")
        data = signer.verify(url.rsplit("/", 1)[1], UNSUBSCRIBE)
        assert (data.subscriber_id, data.list_id) == (ids[to], list_id)
        msg = email.message_from_string(raw, policy=policy.default)
        text, html = msg.get_payload()
        assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
        for part in (text, html):
            assert part["Content-Transfer-Encoding"] == "quoted-printable" and part.get_content_charset() == "utf-8"
            assert "🦀" in part.get_content() and "ünïcödé" in part.get_content()
            # the footer links exactly this recipient's URL, and no other unsubscribe URL
            assert set(re.findall(r"https://\S+?/unsubscribe/[\w.-]+", part.get_content())) == {url}
    listing = run("campaigns", env=env, cwd=tmp_path).stdout
    assert [line.split()[1:6] for line in listing.splitlines()[1:]] == [
        ["test", "700", "preview", "done", "1"], ["send", "700", "main", "done", "6"]]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(store, store_url, tmp_path):
    """No one is lost; rows left `sending` are the only possible duplicates (<= workers + one batch)."""
    from mailer.sending.campaign.sender import batch_size

    bound = WORKERS + batch_size(WORKERS, 300)
    n = 150
    subs = add_subscribers(store, n)
    rng = random.Random()
    for trial in range(3):
        outbox = tmp_path / f"outbox{trial}"
        env = cli_env(store_url, outbox, TWIR_MAIL_SEND_WORKERS=str(WORKERS))
        if trial:  # a fresh campaign each trial: a new issue number on its own list
            with store.engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM deliveries")), conn.execute(sa.text("DELETE FROM campaigns"))
        proc = spawn("send", str(ISSUE), "--yes", "--rate", "300", env=env, cwd=tmp_path)
        wait_for_files(outbox, rng.randint(1, n - 20), proc)
        time.sleep(rng.random() * 0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        [campaign] = store.campaigns()
        before = store.delivery_counts(campaign.id)
        assert before["sending"] <= bound
        r = run("send", "--resume", str(campaign.id), "--yes", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        got = collections.Counter(outbox_recipients(outbox))
        unknown = unknown_addresses(store, campaign.id)
        assert len(unknown) == before["sending"]
        # Everyone not unknown got exactly one message.
        assert all(got[s.email] == 1 for s in subs if s.email not in unknown)
        if unknown:
            assert f"{len(unknown)} unknown" in r.stdout
        r = run("send", "--resume", str(campaign.id), "--yes", "--resend-unknown", env=env, cwd=tmp_path)
        assert r.returncode == 0 or not unknown, r.stderr
        got = collections.Counter(outbox_recipients(outbox))
        assert all(got[s.email] >= 1 for s in subs), "a recipient was lost"
        assert sum(c - 1 for c in got.values()) <= bound
        assert store.delivery_counts(campaign.id)["sent"] == n


def unknown_addresses(store, cid) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(D.c.email).where(D.c.campaign_id == cid, D.c.status == "sending"))
                   .scalars())


def test_ctrl_c_stops_gracefully_and_resume_finishes(store, store_url, tmp_path):
    subs = add_subscribers(store, 60)
    outbox = tmp_path / "outbox"
    env = cli_env(store_url, outbox, TWIR_MAIL_SEND_WORKERS=str(WORKERS))
    proc = spawn("send", str(ISSUE), "--yes", "--rate", "20", env=env, cwd=tmp_path)
    wait_for_files(outbox, 5, proc)
    proc.send_signal(signal.SIGINT)
    out, errout = proc.communicate(timeout=30)
    assert proc.returncode == 130, errout
    assert "twir-mail send --resume 1" in errout and "Traceback" not in errout
    counts = store.delivery_counts(1)
    assert counts["sending"] == 0 and 5 <= counts["sent"] < 60
    assert store.campaign(1).status == "paused"
    r = run("send", str(ISSUE), "--resume", "--yes", "--rate", "200", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(outbox_recipients(outbox)) == sorted(s.email for s in subs)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # SKIP LOCKED sharing: PostgreSQL only
def test_two_concurrent_resumes_on_postgresql_send_nobody_twice(store, store_url, tmp_path, db_settings):
    assert store.dialect == "postgresql"
    subs = add_subscribers(store, 200)
    rendered = render_issue(parse_issue(ISSUE), db_settings)
    c = cmp.start(store, rendered, db_settings, open_transport(db_settings), list_name="main")
    outbox = tmp_path / "outbox"
    env = cli_env(store_url, outbox, TWIR_MAIL_SEND_WORKERS=str(WORKERS))
    # 40/s each: one alone would take 5 s, so the second still finds work if it starts seconds late.
    procs = [spawn("send", "--resume", str(c.id), "--yes", "--rate", "40", env=env, cwd=tmp_path)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    got = collections.Counter(outbox_recipients(outbox))
    assert sorted(got) == sorted(s.email for s in subs) and set(got.values()) == {1}
    per_process = [int(o.split("this run: sent ")[1].split(",")[0]) for o, _ in outs]
    assert sum(per_process) == 200 and min(per_process) > 0  # both did part of the work
    assert store.campaign(c.id).status == "done"


def test_paused_campaign_exits_3_with_resume_hint(store, store_url, tmp_path, smtp_server):
    add_subscribers(store, 4)
    env = cli_env(store_url, tmp_path / "o", **smtp_server.settings_env(), TWIR_MAIL_SECRET_KEY="x" * 32,
                  TWIR_MAIL_WEB_BASE_URL="https://mail.example.org",
                  TWIR_MAIL_NEWSLETTER_POSTAL_ADDRESS="1 Main St, Springfield")  # no warning line before the error
    smtp_server.handler.fail_next = 1
    smtp_server.handler.fail_reply = "454 Throttling failure: Daily message quota exceeded."
    r = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "paused: SMTP refused: 454 Throttling failure: Daily message quota exceeded." in r.stderr
    assert "`twir-mail send --resume 1`" in r.stderr and "Traceback" not in r.stderr
    assert "rate:       14 messages/s" in r.stdout  # SMTP without a configured rate: SES's default
    down = run("send", "--resume", "1", env=dict(env, TWIR_MAIL_SMTP_PORT="9"), cwd=tmp_path)
    assert down.returncode == 1 and down.stderr.strip().startswith("error: cannot send through smtp: SMTP conn")
    assert store.campaign(1).status == "paused"  # a resume that could not start changes nothing
    r = run("send", "--resume", "1", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(x for m in smtp_server.messages for x in m.recipients) == [
        f"reader{i:03d}@example.com" for i in range(4)]


def test_smtp_send_carries_postal_address_feedback_id_and_list_headers(store, store_url, tmp_path, smtp_server):
    """What a mailbox provider checks: the postal address in both parts (and a warning when it is
    missing), Gmail's Feedback-ID, RFC 2369 List-* headers with the mailto next to the HTTPS link."""
    import email
    from email import policy

    add_subscribers(store, 2)
    env = cli_env(store_url, tmp_path / "o", **smtp_server.settings_env(), TWIR_MAIL_SECRET_KEY="x" * 32,
                  TWIR_MAIL_WEB_BASE_URL="https://mail.example.org")
    test = run("send", str(ISSUE), "--to", "editor@example.org", env=env, cwd=tmp_path)
    assert test.returncode == 0, test.stderr
    assert "warning: [newsletter] postal_address is empty (TWIR_MAIL_NEWSLETTER_POSTAL_ADDRESS)" in test.stderr
    address = "This Week in Rust, 548 Market St PMB 12345, San Francisco, CA 94104, USA"
    env.update(TWIR_MAIL_NEWSLETTER_POSTAL_ADDRESS=address,
               TWIR_MAIL_NEWSLETTER_UNSUBSCRIBE_MAILTO="unsubscribe@this-week-in-rust.org")
    r = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "postal_address" not in r.stderr
    first, *rest = smtp_server.messages
    assert email.message_from_bytes(first.data)["Feedback-ID"] == "1:700:direct:twir"
    assert len(rest) == 2
    for received in rest:
        msg = email.message_from_bytes(received.data, policy=policy.default)
        assert msg["Feedback-ID"] == "2:700:main:twir"
        assert msg["List-Help"] == "<https://this-week-in-rust.org>"
        assert msg["List-Archive"] == "<https://this-week-in-rust.org/blog/archives/index.html>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = [v.strip() for v in str(msg["List-Unsubscribe"]).split(",")]
        assert https.startswith("<https://mail.example.org/unsubscribe/")  # RFC 8058: HTTPS first
        assert mailto == "<mailto:unsubscribe@this-week-in-rust.org?subject=unsubscribe>"
        text, html = msg.get_payload()
        assert address in text.get_content()
        assert address in " ".join(html.get_content().split())
