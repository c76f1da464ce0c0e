"""`check --links` against a local web server (tests/fixtures/links.py); never the internet."""

from __future__ import annotations

from mailer.config import with_overrides
from mailer.issue.linkcheck import check_links
from mailer.issue.parse import parse_issue
from mailer.models import Severity


def live_settings(settings, tmp_path, server, **check):
    # 2 s: every link gets this long, not only /slow (3 s), and a loaded machine can stall the
    # server's thread for a second.
    return with_overrides(settings, newsletter={"logo_url": server.url("/logo.png")},
                          check={"link_timeout": 2.0, "link_cache": str(tmp_path / "links.json"), **check})


def test_each_kind_of_dead_link_once_per_url(issue_file, link_server, tls_server, settings, tmp_path):
    s = link_server
    body = f"""\
    * [Good]({s.url("/ok")}) and ![logo]({s.url("/img.png")})
    * [Missing]({s.url("/missing")}) and again [the same]({s.url("/missing")})
    * [Gone]({s.url("/gone")}), [HEAD refused]({s.url("/head-refused")})
    * [Slow]({s.url("/slow")}), [moved here]({s.url("/redirect-same")})
    * [Moved away]({s.url("/redirect-other")}), [loop]({s.url("/loop")})
    * [No such host](http://nothing.invalid/page) and [bad TLS](https://127.0.0.1:{tls_server.port}/)
    * [anchor]({s.url("/ok#section")}) and [mail](mailto:editors@example.org)
    """
    path = issue_file(body)
    findings, stats = check_links(parse_issue(path), live_settings(settings, tmp_path, s))
    got = {(f.line, f.code) for f in findings}
    first = 6
    assert got == {(first + 1, "dead-link"), (first + 2, "dead-link"), (first + 3, "timeout"),
                   (first + 4, "redirect-host"), (first + 4, "redirect-loop"), (first + 5, "dns"),
                   (first + 5, "tls")}, findings
    assert all(f.severity == Severity.WARNING for f in findings)
    assert any("not found (404)" in f.message for f in findings)
    assert any("gone (410)" in f.message for f in findings)
    # Each URL asked once (the anchor is the same page): HEAD, and GET only after a refused HEAD.
    heads = [p for m, p in s.requests if m == "HEAD"]
    # /ok itself, then the end of both redirects (on 127.0.0.1, and on "localhost").
    assert heads.count("/missing") == 1 and heads.count("/ok") == 3
    assert ("GET", "/head-refused") in s.requests and ("GET", "/ok") not in s.requests
    assert stats.urls == 12 and stats.cached == 0  # the logo and 11 distinct pages


def test_per_host_limit_and_the_cache(issue_file, settings, tmp_path):
    from tests.fixtures.links import LinkServer

    server = LinkServer(delay=0.05)
    try:
        body = "".join(f"* [page {n}]({server.url(f'/page/{n}')})\n" for n in range(20))
        body += f"* [dead]({server.url('/missing/1')})\n"
        issue = parse_issue(issue_file(body))
        cfg = live_settings(settings, tmp_path, server, link_per_host=3, link_concurrency=16)
        findings, first = check_links(issue, cfg)
        assert [f.code for f in findings] == ["dead-link"]
        assert server.max_in_flight <= 3 and server.max_in_flight >= 2
        assert first.requests == 23 and first.cached == 0  # 22 HEAD (links + logo) + 1 GET after the 404
        server.requests.clear()
        findings, second = check_links(issue, cfg)
        # Only the dead link is asked again; the good ones come from the cache.
        assert [f.code for f in findings] == ["dead-link"]
        assert sorted(server.requests) == [("GET", "/missing/1"), ("HEAD", "/missing/1")]
        assert second.cached == 21 and second.requests == 2
    finally:
        server.stop()


def test_missing_header_or_sponsor_logo_is_an_error(issue_file, link_server, settings, tmp_path):
    s = link_server
    cfg = with_overrides(live_settings(settings, tmp_path, s), newsletter={"logo_url": s.url("/no-logo.png")})
    path = issue_file("Hello.\n", Sponsor=f"Acme | {s.url('/ok')} | {s.url('/sponsor/no-logo.png')} | Thanks")
    findings, _ = check_links(parse_issue(path), cfg)
    assert sorted((f.severity, f.code, f.line or 0) for f in findings) == [
        (Severity.ERROR, "logo-missing", 0), (Severity.ERROR, "logo-missing", 5)]
    assert any(f.message.startswith("header logo ") for f in findings)
    assert any(f.message.startswith("sponsor logo ") for f in findings)


def test_cli_check_links_prints_findings_and_stats(issue_file, link_server, run_cli, tmp_path):
    s = link_server
    path = issue_file(f"* [Missing]({s.url('/missing')})\n")
    r = run_cli("check", "--links", str(path), env={"TWIR_MAIL_NEWSLETTER_LOGO_URL": s.url("/logo.png"),
                                                "TWIR_MAIL_CHECK_LINK_CACHE": str(tmp_path / "c.json")})
    assert r.code == 0, r.err
    assert f"{path}:6: warning: {s.url('/missing')}: not found (404) [dead-link]" in r.out
    assert "checked 2 link(s)" in r.err and "3 request(s)" in r.err  # logo HEAD; HEAD 404, then GET
    quiet = run_cli("check", "--links", "--ignore", "dead-link", str(path),
                env={"TWIR_MAIL_NEWSLETTER_LOGO_URL": s.url("/logo.png"),
                     "TWIR_MAIL_CHECK_LINK_CACHE": str(tmp_path / "c.json")})
    assert "dead-link" not in quiet.out
