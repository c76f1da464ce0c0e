"""`send --when-live`: a local site answers 404 (post not up yet), asks for patience (503 +
Retry-After), then 200; the send starts only then. And the account check before a send."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time

import pytest

from mailer.config import with_overrides
from mailer.errors import SendingPaused
from mailer.sending.campaign.guard import account_gate
from mailer.errors import CampaignError
from mailer.sending.live import parse_duration, retry_after, wait_until_live
from mailer.sending.transport.ses import SesTransport
from tests.fixtures.send import ISSUE, add_subscribers, cli_env, outbox_recipients
from tests.fixtures.core import free_port

POST = "/blog/2027/04/07/this-week-in-rust-700/"  # tests/data/send/issue-700.md: Date 2027-04-07


class Site(http.server.ThreadingHTTPServer):
    """Answers each GET with the next (status, headers) of ``script``, then repeats the last one."""

    def __init__(self, script):
        self.script, self.hits = list(script), []
        super().__init__(("127.0.0.1", free_port()), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        site = self.server
        site.hits.append((time.monotonic(), self.path, self.headers.get("User-Agent", "")))
        status, headers = site.script.pop(0) if len(site.script) > 1 else site.script[0]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def site_factory():
    sites = []

    def make(script):
        sites.append(Site(script))
        return sites[-1]

    yield make
    for s in sites:
        s.shutdown()
        s.server_close()


def run_send(run_cli, store_url, tmp_path, *args, **env):
    return run_cli("send", str(ISSUE), "--yes", *args,
                   env=cli_env(store_url, tmp_path / "outbox", TWIR_MAIL_SEND_LIVE_POLL_SECONDS="0.2", **env))


def test_waits_for_the_issue_page_then_sends(store, store_url, tmp_path, run_cli, site_factory):
    subs = add_subscribers(store, 3)
    site = site_factory([(404, {}), (404, {}), (503, {"Retry-After": "1"}), (200, {})])
    r = run_send(run_cli, store_url, tmp_path, "--when-live", TWIR_MAIL_NEWSLETTER_SITE_URL=site.url)
    assert r.code == 0, r.err
    # The URL is the issue's own web link, derived like the site's: /blog/YYYY/MM/DD/this-week-in-rust-N/.
    assert [path for _, path, _ in site.hits] == [POST] * 4 and "twir-mail" in site.hits[0][2]
    gaps = [b[0] - a[0] for a, b in zip(site.hits, site.hits[1:])]
    # Lower bounds only: a loaded machine adds time to a gap, never takes it away. The exact
    # schedule is checked on a fake clock (test_backoff_schedule_on_a_fake_clock).
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # backs off
    assert gaps[2] >= 1.0  # honours Retry-After over its own, shorter, interval
    assert f"{site.url}{POST}: HTTP 404; next look in" in r.err and f"{site.url}{POST} is live" in r.err
    assert "sent 3, failed 0" in r.out and sorted(outbox_recipients(tmp_path / "outbox")) == [s.email for s in subs]


def test_gives_up_after_the_timeout_and_records_nothing(store, store_url, tmp_path, run_cli, site_factory):
    add_subscribers(store, 2)
    site = site_factory([(404, {})])
    started = time.monotonic()
    r = run_send(run_cli, store_url, tmp_path, "--when-live", "--timeout", "1s", "--live-url", site.url + "/x/")
    assert r.code == 1 and time.monotonic() - started < 30
    assert r.err.strip().splitlines()[-1] == (f"error: {site.url}/x/ is not live after 1s (last answer: HTTP 404); "
                                             "nothing was sent")
    assert len(site.hits) >= 2 and store.campaigns() == [] and not (tmp_path / "outbox").exists()
    bad = run_send(run_cli, store_url, tmp_path, "--when-live", "--timeout", "soon")
    assert bad.code == 2 and "'soon' is not a duration" in bad.err


class _Answer:
    def __init__(self, code: int, retry: str | None = None):
        self.status_code, self.headers = code, ({"retry-after": retry} if retry else {})


def test_backoff_schedule_on_a_fake_clock():
    """Doubling from the interval, Retry-After when it asks for longer, capped at 5 minutes,
    and no wait that would end past the deadline."""
    waits, now = [], [0.0]

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    answers = iter([_Answer(404), _Answer(404), _Answer(503, "1"), _Answer(200)])
    tries = wait_until_live("http://x/", timeout=60, interval=0.2, sleep=sleep, clock=lambda: now[0],
                            get=lambda url: next(answers))
    assert (tries, waits) == (4, [0.2, 0.4, 1.0])

    waits.clear()
    now[0] = 0.0
    with pytest.raises(CampaignError, match=r"not live after 20m \(last answer: HTTP 404\)"):
        wait_until_live("http://x/", timeout=1200, interval=60, sleep=sleep, clock=lambda: now[0],
                        get=lambda url: _Answer(404))
    assert waits == [60, 120, 240, 300, 300] and now[0] <= 1200


def test_durations_and_retry_after():
    assert [parse_duration(t) for t in ("2h", "90m", "45s", "1h30m", "10")] == [7200, 5400, 45, 5400, 10]
    assert retry_after("120") == 120 and retry_after(None) is None and retry_after("soon") is None
    noon = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    assert retry_after("Mon, 30 Nov 2026 12:01:00 GMT", now=noon) == 60
    assert retry_after("Mon, 30 Nov 2026 11:00:00 GMT", now=noon) == 0


# -- the SES account's own state, read before a send ----------------------------------------

def account_answer(**fields):
    """A GetAccount answer as SES gives it, parsed by botocore like any other (before-send hook)."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def __init__(self, body):
            self.body = body

        def stream(self, **kw):
            yield self.body

    body = json.dumps({"SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0},
                       "ProductionAccessEnabled": True, **fields}).encode()
    return lambda request, **kw: AWSResponse("https://email.invalid/", 200,
                                             {"Content-Type": "application/json"}, Raw(body))


def transport_answering(moto, settings, **fields) -> SesTransport:
    client = moto.client("sesv2")
    client.meta.events.register("before-send.sesv2.GetAccount", account_answer(**fields))
    return SesTransport(settings.ses, client=client)


def test_account_state_before_a_send(moto, settings):
    settings = with_overrides(settings, ses={"endpoint_url": moto.url})
    paused = transport_answering(moto, settings, SendingEnabled=True, EnforcementStatus="SHUTDOWN")
    with pytest.raises(SendingPaused, match=r"the SES account cannot send \(enforcement status SHUTDOWN\)"):
        account_gate(paused)
    disabled = transport_answering(moto, settings, SendingEnabled=False, EnforcementStatus="HEALTHY")
    with pytest.raises(SendingPaused, match="SendingEnabled is false"):
        account_gate(disabled)
    review = transport_answering(moto, settings, SendingEnabled=True, EnforcementStatus="PROBATION")
    assert "under review (enforcement status PROBATION)" in account_gate(review)
    assert review.account_rate() == 14.0  # the same single GetAccount also gave the rate
    healthy = transport_answering(moto, settings, SendingEnabled=True, EnforcementStatus="HEALTHY")
    assert account_gate(healthy) is None
    # moto itself has no GetAccount (404): unknown, so no verdict, and the v1 quota gives the rate.
    plain = SesTransport(settings.ses, client=moto.client("sesv2"))
    assert account_gate(plain) is None and plain.account_rate() > 0


def test_eventbridge_schedule_example_is_cfn_lint_clean():
    import subprocess
    import sys
    from pathlib import Path

    from tests.fixtures.core import ROOT

    template = ROOT / "deploy" / "aws" / "send-schedule.yaml"
    res = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(template)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "--when-live" in template.read_text()
