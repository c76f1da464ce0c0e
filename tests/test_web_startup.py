"""Issue 11: the web app refuses the development secret off loopback, and logs without secrets."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from mailer.config import DEV_SECRET, with_overrides
from mailer.errors import ConfigError
from mailer.web.startup import check_can_serve, safe_path
from tests.test_web_entrypoints import api_event, serving

REAL = "a-real-secret-for-tests-0123456789"


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "http://localhost:9000", "http://[::1]:8000",
                                  "http://twir.localhost"])
def test_development_secret_is_fine_on_loopback(settings, base):
    check_can_serve(with_overrides(settings, web={"base_url": base}), bind_host="127.0.0.1")


@pytest.mark.parametrize("base", ["https://newsletter.example.org", "http://0.0.0.0:8000",
                                  "http://169.254.1.1", "http://10.0.0.5:8000"])
def test_development_secret_is_refused_off_loopback(settings, base):
    with pytest.raises(ConfigError, match="development secret: set TWIR_MAIL_SECRET_KEY") as err:
        check_can_serve(with_overrides(settings, web={"base_url": base}))
    assert "\n" not in str(err.value)
    # A real secret serves anywhere; a short one is no secret.
    public = with_overrides(settings, web={"base_url": base})
    check_can_serve(replace(public, secret_key=REAL), bind_host="0.0.0.0")
    with pytest.raises(ConfigError):
        check_can_serve(replace(public, secret_key="short"))


def test_development_secret_bound_to_every_interface_is_refused(settings):
    assert settings.secret_key == DEV_SECRET
    with pytest.raises(ConfigError, match="on 0.0.0.0"):
        check_can_serve(settings, bind_host="0.0.0.0")


def test_serve_refuses_the_development_secret_in_one_line(run_cli, workdir):
    (workdir / "twir-mail.toml").write_text('[web]\nbase_url = "https://newsletter.example.org"\n')
    res = run_cli("serve", "--port", "1", timeout=60)
    assert res.code == 2
    assert res.err.strip().splitlines() == [res.err.strip()]
    assert "development secret" in res.err and "TWIR_MAIL_SECRET_KEY" in res.err and "Traceback" not in res.err
    assert not (workdir / "twir-mail.db").exists()  # refused before touching anything


def test_serve_refuses_the_development_secret_on_a_public_bind(run_cli, workdir):
    res = run_cli("serve", "--host", "0.0.0.0", "--port", "1", timeout=60)
    assert res.code == 2 and "on 0.0.0.0" in res.err and "Traceback" not in res.err


def test_lambda_refuses_the_development_secret(workdir, monkeypatch, caplog):
    monkeypatch.setenv("TWIR_MAIL_WEB_BASE_URL", "https://newsletter.example.org")
    from mailer.web import aws_lambda

    monkeypatch.setattr(aws_lambda, "_handler", None)
    with pytest.raises(SystemExit, match="development secret"):
        aws_lambda.handler(api_event("GET", "/healthz"), None)
    assert [r.levelname for r in caplog.records if "development secret" in r.getMessage()] == ["CRITICAL"]
    monkeypatch.setenv("TWIR_MAIL_SECRET_KEY", REAL)
    assert aws_lambda.handler(api_event("GET", "/healthz"), None)["statusCode"] == 200


def test_safe_path_hides_tokens():
    assert safe_path("/unsubscribe/AAAA.BBBB") == "/unsubscribe/<token>"
    assert safe_path("/unsubscribe/AAAA.BBBB/resubscribe") == "/unsubscribe/<token>/resubscribe"
    assert safe_path("/confirm/XYZ") == "/confirm/<token>"
    assert safe_path("/subscribe") == "/subscribe"


def test_safe_path_hides_tokens_in_mangled_links():
    """A link a mail client or a reader mangled still carries a working token."""
    token = "AQAAAAAAAAAHAAAAAAAAAAEAAAAAAAAAAA.c2VjcmV0LXRhZy1oZXJlLXg"
    for path in (f"/UNSUBSCRIBE/{token}", f"//unsubscribe/{token}", f"/unsubscribe//{token}",
                 f"/newsletter/unsubscribe/{token}", f"/Confirm/{token}/", f"/{token}", f"/unsub/{token}x"):
        logged = safe_path(path)
        assert token[:16] not in logged and token[-16:] not in logged, (path, logged)
    assert safe_path("/blog/2026/01/01/this-week-in-rust-1") == "/blog/2026/01/01/this-week-in-rust-1"


def test_safe_path_is_linear_in_the_path_length():
    """The token-shape search once backtracked over every long run without a dot: 3.6 s for a
    60 KB path, on the event loop. A megabyte now takes milliseconds; the alarm is a backstop."""
    import signal

    def too_slow(*_):
        raise TimeoutError("safe_path is not linear")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)  # the quadratic search needs hours for these
    try:
        for path in ("/" + "a" * 1_000_000, "/" + "a" * 500_000 + "." + "b" * 500_000, "/" + "a-" * 500_000):
            assert len(safe_path(path)) < 300
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_serve_logs_one_line_per_request_without_tokens(workdir):
    token = "AQAAAAAAAAAHAAAAAAAAAAEAAAAAAAAAAA.c2VjcmV0LXRhZy1oZXJlLXg"
    with serving(workdir) as (url, output):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/unsubscribe/{token}?email=reader@example.com", timeout=5)
        urllib.request.urlopen(f"{url}/subscribe", timeout=5).read()
    err = output["err"]
    assert "GET /unsubscribe/<token> 400" in err and "GET /subscribe 200" in err
    assert token not in err and "reader@example.com" not in err and "127.0.0.1 " not in err.split("serving on")[-1]
    assert len([line for line in err.splitlines() if "GET /subscribe 200" in line]) == 1


def test_every_worker_logs_requests(workdir):
    with serving(workdir, "--workers", "2") as (url, output):
        for _ in range(4):
            urllib.request.urlopen(f"{url}/subscribe", timeout=5).read()
    assert output["err"].count("GET /subscribe 200") >= 4  # the first /healthz polls aside


def test_safe_path_cannot_forge_log_lines():
    """The path arrives %-decoded: a client's %0A would start a log line of its choosing."""
    forged = safe_path("/x\n2026-01-01 00:00:00 INFO twir_mail.access: GET /admin 200 1ms\r\u2028\x85")
    assert forged.isprintable() and "%0A" in forged and "%E2%80%A8" in forged
    assert safe_path("/caf\u00e9") == "/caf\u00e9"  # printable text stays readable
    assert safe_path("/x 200 0ms") == "/x%20200%200ms"  # a log line's fields are space-separated
    long = safe_path("/" + "a" * 60_000)
    assert len(long) < 300 and long.endswith("...")
