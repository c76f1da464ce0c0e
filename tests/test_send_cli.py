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

from mailer import campaign as cmp
from mailer.campaign import ledger
from mailer.issue import parse_issue
from mailer.render import render_issue
from mailer.store.schema import deliveries as D
from mailer.transport import open_transport
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
    assert no.returncode == 1 and "send it?" in no.stderr
    dry = run("send", str(ISSUE), "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0 and "built 3 message(s)" in dry.stdout
    assert ledger.all_campaigns(store) == [] and not (tmp_path / "outbox").exists()


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
    assert len(ledger.all_campaigns(store)) == 1 and len(outbox_recipients(tmp_path / "outbox")) == 3


def test_ses_and_smtp_refused_without_secret(store, store_url, tmp_path):
    add_subscribers(store, 1)
    env = cli_env(store_url, tmp_path / "o", TWIR_MAIL_TRANSPORT_KIND="ses")
    r = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "TWIR_MAIL_SECRET_KEY" in r.stderr
    env.update(TWIR_MAIL_SECRET_KEY="x" * 32)
    r = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "base_url" in r.stderr
    assert ledger.all_campaigns(store) == []


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
    assert ledger.all_campaigns(store) == [] and moto.sent_messages() == []


def test_send_through_moto_via_environment(store, store_url, tmp_path, moto):
    add_subscribers(store, 6)
    env = cli_env(store_url, tmp_path / "o", TWIR_MAIL_TRANSPORT_KIND="ses", TWIR_MAIL_SES_ENDPOINT_URL=moto.url,
                  TWIR_MAIL_SES_REGION="us-east-1", TWIR_MAIL_SECRET_KEY="x" * 32,
                  TWIR_MAIL_WEB_BASE_URL="https://mail.example.org", AWS_ACCESS_KEY_ID="testing",
                  AWS_SECRET_ACCESS_KEY="testing")
    r = run("send", str(ISSUE), "--yes", "--rate", "50", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "transport:  ses" in r.stdout and "50 messages/s" in r.stdout
    sent = moto.sent_messages()
    assert sorted(m["destinations"][0] for m in sent) == [f"reader{i:03d}@example.com" for i in range(6)]
    assert all("List-Unsubscribe: <https://mail.example.org/unsubscribe/" in m["raw_data"] for m in sent)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(store, store_url, tmp_path):
    """No one is lost; rows left `sending` are the only possible duplicates (<= workers)."""
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
        [campaign] = ledger.all_campaigns(store)
        before = ledger.counts(store, campaign.id)
        assert before["sending"] <= WORKERS
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
        assert sum(c - 1 for c in got.values()) <= WORKERS
        assert ledger.counts(store, campaign.id)["sent"] == n


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
    counts = ledger.counts(store, 1)
    assert counts["sending"] == 0 and 5 <= counts["sent"] < 60
    assert ledger.get(store, 1).status == "paused"
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
    procs = [spawn("send", "--resume", str(c.id), "--yes", "--rate", "100", env=env, cwd=tmp_path)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    got = collections.Counter(outbox_recipients(outbox))
    assert sorted(got) == sorted(s.email for s in subs) and set(got.values()) == {1}
    per_process = [int(o.split("this run: sent ")[1].split(",")[0]) for o, _ in outs]
    assert sum(per_process) == 200 and min(per_process) > 0  # both did part of the work
    assert ledger.get(store, c.id).status == "done"


def test_paused_campaign_exits_3_with_resume_hint(store, store_url, tmp_path, smtp_server):
    add_subscribers(store, 4)
    env = cli_env(store_url, tmp_path / "o", **smtp_server.settings_env(), TWIR_MAIL_SECRET_KEY="x" * 32,
                  TWIR_MAIL_WEB_BASE_URL="https://mail.example.org")
    smtp_server.handler.fail_next = 1
    smtp_server.handler.fail_reply = "454 Throttling failure: Daily message quota exceeded."
    r = run("send", str(ISSUE), "--yes", env=env, cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "paused: SMTP refused: 454 Throttling failure: Daily message quota exceeded." in r.stderr
    assert "`twir-mail send --resume 1`" in r.stderr and "Traceback" not in r.stderr
    assert "rate:       14 messages/s" in r.stdout  # SMTP without a configured rate: SES's default
    r = run("send", "--resume", "1", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(x for m in smtp_server.messages for x in m.recipients) == [
        f"reader{i:03d}@example.com" for i in range(4)]
