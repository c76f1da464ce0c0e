"""`twir-mail render | check | preview` as a user runs them (real subprocesses)."""

from __future__ import annotations

import email
import os
import re
import signal
import subprocess
import sys
import time
from email import policy

import httpx

from mailer.models import SAMPLE_RECIPIENT, UNSUBSCRIBE_PLACEHOLDER
from tests.fixtures.core import ROOT, as_in_a_terminal


def test_render_writes_html_text_and_eml(run_cli, corpus, workdir):
    issue = corpus[-1]
    res = run_cli("render", str(issue), "-o", "out")
    assert res.code == 0, res.err
    stem = issue.stem
    assert re.fullmatch(rf"{re.escape(str(issue))} -> out/{stem}\.html \(\d+\.\d KiB HTML, \d+\.\d KiB text, \.eml sample\)\n",
                        res.out)
    html = (workdir / "out" / f"{stem}.html").read_text(encoding="utf-8")
    text = (workdir / "out" / f"{stem}.txt").read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and UNSUBSCRIBE_PLACEHOLDER in html
    assert text.startswith("This Week in Rust 658") and UNSUBSCRIBE_PLACEHOLDER in text
    msg = email.message_from_bytes((workdir / "out" / f"{stem}.eml").read_bytes(), policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["To"] == SAMPLE_RECIPIENT and msg["Subject"] == "This Week in Rust 658"
    plain, rich = msg.get_body(("plain",)), msg.get_body(("html",))
    assert "Hello and welcome" in plain.get_content() and "Hello and welcome" in rich.get_content()
    assert "/unsubscribe/SAMPLE-TOKEN" in plain.get_content()
    assert UNSUBSCRIBE_PLACEHOLDER not in plain.get_content() + rich.get_content()


def test_one_bad_file_among_good_ones(run_cli, corpus, workdir):
    bad = workdir / "broken.md"
    bad.write_text("Title: This Week in Rust 1\nDate: someday\n\nBody\n")
    good = [corpus[0], corpus[-1]]
    res = run_cli("render", str(good[0]), str(bad), str(good[1]), str(workdir / "absent.md"))
    assert res.code == 1
    assert res.out.count(" -> ") == 2
    for g in good:
        assert (workdir / "build" / f"{g.stem}.html").is_file()  # default output folder
    assert f"error: {bad}:2: invalid Date 'someday'" in res.err
    assert f"error: {workdir / 'absent.md'}: no such file" in res.err
    assert "2 of 4 issue(s) failed to render" in res.err
    assert "Traceback" not in res.err


def test_two_issues_with_one_name_do_not_overwrite_each_other(run_cli, corpus, workdir):
    for folder, issue in (("a", corpus[0]), ("b", corpus[-1])):
        (workdir / folder).mkdir()
        (workdir / folder / "issue.md").write_bytes(issue.read_bytes())
    res = run_cli("render", "a/issue.md", "b/issue.md", "a/issue.md")  # the same one twice is fine
    assert res.code == 1 and res.out.count(" -> ") == 2
    assert res.err.splitlines() == [
        "error: b/issue.md: its issue.html, .txt and .eml would replace those of a/issue.md: "
        "render it with another -o folder", "error: 1 of 3 issue(s) failed to render"]
    assert run_cli("render", "a/issue.md", "-o", "again").code == 0  # build/ holds a's output, not b's
    assert (workdir / "build" / "issue.txt").read_text() == (workdir / "again" / "issue.txt").read_text()


def test_render_unwritable_output(run_cli, corpus, workdir):
    (workdir / "afile").write_text("x")
    res = run_cli("render", str(corpus[-1]), "-o", "afile/sub")
    assert res.code != 0 and res.err.startswith("error: afile/sub: cannot create output folder")
    assert "Traceback" not in res.err


def test_render_failure_leaves_no_partial_set(run_cli, corpus, workdir):
    """If one of the three files cannot be written, none of them is (and no temp files stay)."""
    issue = corpus[-1]
    out = workdir / "out"
    (out / f"{issue.stem}.eml").mkdir(parents=True)  # the .eml cannot be written
    res = run_cli("render", str(issue), "-o", "out")
    assert res.code == 1 and f"error: out/{issue.stem}.eml: cannot write" in res.err, res.err
    assert sorted(p.name for p in out.iterdir()) == [f"{issue.stem}.eml"]
    assert "Traceback" not in res.err


def test_check_exit_codes_and_format(run_cli, corpus, draft):
    res = run_cli("check", str(draft))
    assert res.code == 1
    lines = res.out.splitlines()
    assert all(re.match(rf"{re.escape(str(draft))}(:\d+)?: (error|warning): ", line) for line in lines)
    assert any(": error: draft placeholder REDDIT_LINK_HERE" in line for line in lines)
    assert any(": error: mojibake" in line for line in lines)
    assert re.search(r"\d+ error\(s\), \d+ warning\(s\) in 1 file\(s\)", res.err)
    assert all(re.search(r" \[[a-z-]+\]$", line) for line in lines)  # each with its stable code
    # The latest issue's only error is the retired Mailchimp link.
    clean = run_cli("check", "--errors-only", "--ignore", "retired-link", str(corpus[-1]))
    assert clean.code == 0 and clean.out == ""
    both = run_cli("check", str(corpus[-1]), str(draft))
    assert both.code == 1 and "in 2 file(s)" in both.err


def test_preview_serves_and_stops(workdir, corpus):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "mailer", "preview", str(corpus[-1]), "--port", "0"],
                            cwd=workdir, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)
    try:
        line = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and 'data-view="mobile"' in page.text
        mail = httpx.get(url + "email.html", timeout=30)
        assert "Hello and welcome" in mail.text
        assert "@media all" in httpx.get(url + "email-dark.html", timeout=30).text
        assert httpx.get(url + "email.txt", timeout=30).headers["content-type"].startswith("text/plain")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 0


def test_preview_bad_file_is_one_line_error(run_cli, workdir):
    res = run_cli("preview", str(workdir / "nope.md"))
    assert res.code == 1 and res.err.strip() == f"error: {workdir / 'nope.md'}: no such file"


def test_preview_port_in_use(run_cli, corpus):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run_cli("preview", str(corpus[-1]), "--port", str(port))
    assert res.code == 1
    assert res.err.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_preview_version_moves_only_when_the_page_would_change(issue_file, settings):
    """A save that changes nothing the page shows (a touch, the same text written again, or one
    save seen as a write and then a touch) must not reload the editor's browser."""
    from mailer.issue.preview import PreviewState

    path = issue_file("Hello from the preview.\n")
    state = PreviewState(path, settings)
    state.refresh()
    first = state.status()["version"]
    os.utime(path)
    state.refresh()
    path.write_bytes(path.read_bytes())
    state.refresh()
    assert state.status()["version"] == first
    path.write_text(path.read_text().replace("Hello", "Hi"))
    state.refresh()
    assert state.status()["version"] == first + 1 and "Hi from the preview." in state.text
    path.unlink()
    state.refresh()
    assert state.status()["version"] == first + 2 and state.error


def test_preview_recovers_when_the_file_comes_back_unchanged(issue_file, settings):
    """Deleted then restored with its old mtime (git stash/checkout, cp -p): the error must clear.
    The watcher sees file-system events, so the page follows without any request asking."""
    import threading

    from mailer.issue.preview import make_server

    path = issue_file("Hello from the preview.\n")
    saved = path.read_bytes(), path.stat().st_mtime_ns
    server = make_server(path, settings, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/" % server.server_address[1]

    def status_when(holds) -> dict:
        """The state once ``holds`` (read directly: no request may be what triggers a render)."""
        deadline = time.monotonic() + 30  # ends as soon as it holds; a loaded 2-CPU box is slow
        while not holds(status := server.state.status()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return status

    try:
        first = status_when(lambda st: True)
        assert first["error"] == ""
        path.unlink()
        gone = status_when(lambda st: st["error"])
        assert "no such file" in gone["error"].lower() and gone["version"] > first["version"]
        path.write_bytes(saved[0])
        os.utime(path, ns=(saved[1], saved[1]))
        status = status_when(lambda st: st["error"] == "")
        assert status["error"] == "" and httpx.get(url + "version", timeout=10).json() == status
        assert "Hello from the preview." in httpx.get(url + "email.txt", timeout=10).text
        other = path.with_name("other.md")
        other.write_text("Not the previewed file.\n")  # the folder is watched, only this file counts
        time.sleep(0.5)
        assert httpx.get(url + "version", timeout=10).json()["version"] == status["version"]
    finally:
        server.shutdown()
        server.server_close()
    assert not any(t.name == "preview-watch" for t in threading.enumerate())  # the watcher stopped
