"""`twir-mail serve` as a user runs it, and the AWS Lambda handler fed API Gateway events."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from mailer.config import load_settings
from mailer.models import Status
from mailer.store import open_store
from mailer.tokens import Signer
from tests.fixtures.core import ROOT, free_port

SECRET = "lambda-test-secret-0123456789"


@contextlib.contextmanager
def serving(workdir, *args: str, config: str = ""):
    """`twir-mail serve ARGS` in a subprocess; yields (base URL, output) once /healthz answers;
    output["err"] holds its stderr after the block."""
    port = free_port()
    (workdir / "twir-mail.toml").write_text(f'[web]\nbase_url = "http://127.0.0.1:{port}"\n{config}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "mailer", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output: dict = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", output
    finally:
        proc.terminate()
        output["err"] = proc.communicate(timeout=15)[1]


def test_serve_runs_the_app(workdir):
    with serving(workdir) as (url, output):
        assert urllib.request.urlopen(f"{url}/healthz", timeout=5).read() == b"ok\n"
        page = urllib.request.urlopen(f"{url}/subscribe", timeout=5).read().decode()
        assert 'name="email"' in page
        assert (workdir / "twir-mail.db").exists()  # the embedded SQLite was created and upgraded
    assert f"serving on {url}" in output["err"] and "Traceback" not in output["err"]


def test_serve_with_workers_builds_the_app_through_the_web_factory(workdir):
    """Each worker process builds the app with mailer.web:app_from_env from the same config file."""
    with serving(workdir, "--workers", "2", config="[newsletter]\nname = \"Factory Weekly\"\n") as (url, output):
        page = urllib.request.urlopen(f"{url}/subscribe", timeout=5).read().decode()
        assert "Factory Weekly" in page
    assert "Traceback" not in output["err"]


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_for_is_trusted_only_from_the_named_proxy(workdir, trusted):
    import httpx

    args = ["--forwarded-allow-ips", "127.0.0.1"] if trusted else []
    with serving(workdir, *args, config="subscribe_rate_per_hour = 1\n") as (url, _):
        def subscribe(addr, client_ip):
            return httpx.post(f"{url}/subscribe", data={"email": addr},
                              headers={"X-Forwarded-For": client_ip}).status_code

        assert subscribe("a@example.com", "198.51.100.1") == 200
        assert subscribe("b@example.com", "198.51.100.1") == 429
        # Another client behind the proxy has its own allowance; a direct caller cannot fake one.
        assert subscribe("c@example.com", "198.51.100.2") == (200 if trusted else 429)


def test_ipv6_clients_are_limited_per_64(workdir):
    import httpx

    with serving(workdir, "--forwarded-allow-ips", "127.0.0.1", config="subscribe_rate_per_hour = 1\n") as (url, _):
        def subscribe(addr, client_ip):
            return httpx.post(f"{url}/subscribe", data={"email": addr},
                              headers={"X-Forwarded-For": client_ip}).status_code

        assert subscribe("a@example.com", "2001:db8:0:1::1") == 200
        # Another address of the same /64 is the same client: no fresh allowance.
        assert subscribe("b@example.com", "2001:db8:0:1::2") == 429
        assert subscribe("c@example.com", "2001:db8:0:1:ffff:1:2:3") == 429
        assert subscribe("d@example.com", "2001:db8:0:2::1") == 200


def test_serve_reports_an_unreachable_database_in_one_line(run_cli):
    r = run_cli("serve", "--port", str(free_port()),
                env={"TWIR_MAIL_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"})
    assert r.code != 0 and "Traceback" not in r.err
    assert r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1


def api_event(method: str, path: str, body: bytes = b"", content_type: str | None = None) -> dict:
    """An API Gateway HTTP API (payload 2.0) event, as a Lambda function URL also sends."""
    headers = {"host": "abc.lambda-url.us-east-1.on.aws", "user-agent": "test"}
    if content_type:
        headers["content-type"] = content_type
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
        "requestContext": {"accountId": "123456789012", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
                           "domainPrefix": "abc", "requestId": "r1", "routeKey": "$default", "stage": "$default",
                           "time": "25/Nov/2026:12:00:00 +0000", "timeEpoch": 0,
                           "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.7", "userAgent": "test"}},
        "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
    }


@pytest.fixture
def lambda_env(workdir, monkeypatch, store_url):
    monkeypatch.setenv("TWIR_MAIL_DATABASE_URL", store_url)
    monkeypatch.setenv("TWIR_MAIL_SECRET_KEY", SECRET)
    monkeypatch.setenv("TWIR_MAIL_WEB_BASE_URL", "https://newsletter.example.org")
    from mailer.web import aws_lambda

    monkeypatch.setattr(aws_lambda, "_handler", None)
    with open_store(load_settings(), upgrade=True) as store:
        yield aws_lambda, store


def test_lambda_handler_one_click(lambda_env):
    aws_lambda, store = lambda_env
    sub = store.add("lambda.reader@example.com")
    token = Signer(SECRET).unsubscribe_token(sub.id, store.list_id("main"))
    health = aws_lambda.handler(api_event("GET", "/healthz"), None)
    assert health["statusCode"] == 200 and health["body"] == "ok\n"
    page = aws_lambda.handler(api_event("GET", f"/unsubscribe/{token}"), None)
    assert page["statusCode"] == 200 and store.get_by_id(sub.id).status is Status.SUBSCRIBED
    done = aws_lambda.handler(api_event("POST", f"/unsubscribe/{token}", b"List-Unsubscribe=One-Click",
                                        "application/x-www-form-urlencoded"), None)
    assert done["statusCode"] == 200 and "location" not in {k.lower() for k in done["headers"]}
    assert store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    forged = aws_lambda.handler(api_event("POST", f"/unsubscribe/{token[:-3]}", b"List-Unsubscribe=One-Click",
                                          "application/x-www-form-urlencoded"), None)
    assert forged["statusCode"] == 400


def test_database_down_is_a_503_page(settings, server_errors):
    import httpx

    from mailer.config import with_overrides
    from mailer.web import create_app
    from tests.fixtures.web import serve

    s = with_overrides(settings, database={"url": "postgresql://postgres@127.0.0.1:1/nothing"})
    token = Signer(s.secret_key).unsubscribe_token(1, 1)
    port = free_port()
    with serve(create_app(s), port) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        r = httpx.post(f"{url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 503 and "Temporarily unavailable" in r.text and "Traceback" not in r.text
    records = _logged(server_errors)
    # An outage is one error line and the status the reader got, not a traceback and a "500".
    assert [m for _, m, _ in records if m.startswith("POST ")] == ["POST /unsubscribe/<token> 503"]
    assert [m.split(":")[0] for level, m, _ in records if level >= logging.ERROR] == ["database unavailable"]
    assert not [m for _, m, exc in records if exc]


def test_a_bug_is_a_500_page_and_one_traceback_in_the_log(settings, server_errors):
    import httpx

    from mailer.web import create_app
    from tests.fixtures.web import serve

    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("a bug in the store")

    token = Signer(settings.secret_key).unsubscribe_token(1, 1)
    with serve(create_app(settings, store=Broken()), free_port()) as url:
        r = httpx.post(f"{url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 500 and "Something went wrong" in r.text and "a bug" not in r.text
    records = _logged(server_errors)
    assert [m for _, m, _ in records if m.startswith("POST ")] == ["POST /unsubscribe/<token> 500"]
    assert len([exc for _, _, exc in records if exc]) == 1  # uvicorn's; the app adds no second copy


def _logged(caplog) -> list[tuple[int, str, bool]]:
    """(level, message without its timing, has a traceback) of each record."""
    return [(r.levelno, re.sub(r" \d+ms$", "", r.getMessage()), bool(r.exc_info)) for r in caplog.records]
