"""`preview`: a local page showing the email as desktop, mobile, dark and text.

Standard-library HTTP server (loopback by default). A watchfiles watcher on
the file's folder re-renders it whenever it is written, replaced (editors that
save through a rename), deleted or restored: the operating system's change
events, not polling of modification times. The page polls ``/version`` and
reloads the frame, so editing the Markdown updates the view. A render error is
shown in the page instead of stopping the server, and the findings of `check`
for the same rendering are listed beside the email.
"""

from __future__ import annotations

import html
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mailer.config import Settings
from mailer.errors import TwirMailError
from mailer.issue.lint import Checker, check_parsed
from mailer.issue.parse import parse_issue

# Dark view: make the dark-mode rules unconditional, as a dark-mode client would apply them.
_DARK_MEDIA = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {name}</title>
<style>
body {{ margin: 0; font: 14px system-ui, sans-serif; background: #d9dce0; }}
nav {{ position: sticky; top: 0; padding: 8px 12px; background: #24292f; color: #fff; display: flex; gap: 8px; align-items: center; }}
nav button {{ font: inherit; padding: 4px 12px; border: 1px solid #57606a; border-radius: 4px; background: #32383f; color: #fff; cursor: pointer; }}
nav button[aria-pressed="true"] {{ background: #b7410e; border-color: #b7410e; }}
#status {{ margin-left: auto; opacity: .8; }}
#error {{ margin: 12px auto; max-width: 760px; padding: 8px 12px; background: #ffebe9; color: #82071e; white-space: pre-wrap; }}
#error:empty {{ display: none; }}
main {{ display: flex; gap: 16px; justify-content: center; align-items: flex-start; padding: 0 12px; }}
iframe {{ display: block; margin: 16px 0; border: 0; background: #fff; height: calc(100vh - 90px); box-shadow: 0 1px 4px #0003; }}
#findings {{ width: 340px; margin: 16px 0; max-height: calc(100vh - 90px); overflow: auto; background: #fff;
  box-shadow: 0 1px 4px #0003; font-size: 13px; }}
#findings h2 {{ margin: 0; padding: 8px 12px; font-size: 14px; background: #f6f8fa; border-bottom: 1px solid #d0d7de; }}
#findings ol {{ list-style: none; margin: 0; padding: 0; }}
#findings li {{ padding: 6px 12px; border-bottom: 1px solid #eaeef2; overflow-wrap: anywhere; }}
#findings li.error {{ border-left: 4px solid #cf222e; }}
#findings li.warning {{ border-left: 4px solid #bf8700; }}
#findings .where {{ font-weight: 600; }} #findings .code {{ color: #57606a; font-family: monospace; }}
</style></head><body>
<nav><strong>{name}</strong>
<button data-view="desktop" aria-pressed="true">Desktop 600 px</button>
<button data-view="mobile">Mobile 375 px</button>
<button data-view="dark">Dark</button>
<button data-view="text">Plain text</button>
<span id="status"></span></nav>
<div id="error"></div>
<main><iframe id="frame" title="email preview" src="/email.html" width="600"></iframe>
<aside id="findings" aria-label="check findings"><h2 id="summary">check</h2><ol id="list"></ol></aside></main>
<script>
const VIEWS = {{desktop: ["/email.html", 600], mobile: ["/email.html", 375],
               dark: ["/email-dark.html", 600], text: ["/email.txt", 680]}};
const frame = document.getElementById("frame");
let view = "desktop", version = null;
function show(name) {{
  view = name;
  const [src, width] = VIEWS[name];
  frame.width = width;
  frame.src = src + "?v=" + version;
  document.querySelectorAll("nav button").forEach(b => b.setAttribute("aria-pressed", b.dataset.view === name));
  document.body.dataset.view = name;
}}
document.querySelectorAll("nav button").forEach(b => b.onclick = () => show(b.dataset.view));
function showFindings(items) {{
  const errors = items.filter(f => f.severity === "error").length;
  document.getElementById("summary").textContent =
    `check: ${{errors}} error(s), ${{items.length - errors}} warning(s)`;
  const list = document.getElementById("list");
  list.replaceChildren(...items.map(f => {{
    const li = document.createElement("li");
    li.className = f.severity;
    const where = document.createElement("span"); where.className = "where";
    where.textContent = (f.line ? "line " + f.line : "issue") + ": " + f.severity + " ";
    const code = document.createElement("span"); code.className = "code"; code.textContent = " [" + f.code + "]";
    li.append(where, document.createTextNode(f.message), code);
    return li;
  }}));
}}
async function poll() {{
  try {{
    const r = await (await fetch("/version", {{cache: "no-store"}})).json();
    document.getElementById("error").textContent = r.error || "";
    document.getElementById("status").textContent = r.status;
    showFindings(r.findings || []);
    if (version !== null && r.version !== version) {{ version = r.version; show(view); }}
    version = r.version;
  }} catch (e) {{ document.getElementById("status").textContent = "server stopped"; }}
  setTimeout(poll, 700);
}}
poll();
</script></body></html>
"""


WATCH_READY_S = 5.0  # at most this long for the file watch to be set up at start


class PreviewState:
    """The rendered issue, re-rendered by a watcher thread whenever the file changes."""

    def __init__(self, path: Path, settings: Settings, checker: Checker = check_parsed):
        self.path = path
        self.settings = settings
        self.checker = checker
        self.findings: list[dict] = []
        self.lock = threading.Lock()
        self.version = 0
        self.html = "<!doctype html><p>Not rendered yet.</p>"
        self.text = ""
        self.sizes = ""
        self.error = ""
        self._stop = threading.Event()
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    def refresh(self) -> None:
        """Render the file as it is now (or note why it cannot be read); a new version only
        if the page would show something else (a reload loses the editor's scroll position,
        and one save can reach the watcher as two batches: a write, then a touch)."""
        with self.lock:
            before = self._shown()
            try:
                findings, rendered = self.checker(parse_issue(self.path), self.settings)
            except TwirMailError as exc:
                self.error, self.findings = str(exc), []
            else:
                self.findings = [{"line": f.line, "severity": f.severity.value, "message": f.message, "code": f.code}
                                 for f in findings]
                self.error = "" if rendered is not None else next(
                    (f"{self.path}: {f.message}" for f in findings if f.code == "render"), "cannot render")
                if rendered is not None:
                    self.html, self.text = rendered.html, rendered.text
                    self.sizes = (f"{rendered.html_bytes / 1024:.1f} KiB HTML, "
                                  f"{rendered.text_bytes / 1024:.1f} KiB text")
            if self._shown() != before:
                self.version += 1

    def _shown(self) -> tuple:
        return self.html, self.text, self.sizes, self.error, self.findings

    def watch(self) -> None:
        """Start re-rendering on every change of the file (until ``close``); returns once the
        operating system watches it, so a change right after start-up is not missed."""
        self._watcher = threading.Thread(target=self._watch, name="preview-watch", daemon=True)
        self._watcher.start()
        self._watching.wait(timeout=WATCH_READY_S)

    def _watch(self) -> None:
        import watchfiles

        # The folder, not the file: an editor saving through a rename replaces the file's inode.
        name = self.path.name
        try:
            # yield_on_timeout: an empty set now and then, the first one saying the watch is set up.
            for changes in watchfiles.watch(self.path.parent, recursive=False, stop_event=self._stop,
                                            watch_filter=lambda _, changed: Path(changed).name == name,
                                            raise_interrupt=False, yield_on_timeout=True, rust_timeout=200):
                self._watching.set()
                if changes:
                    self.refresh()
        except Exception as exc:  # noqa: BLE001 - e.g. the OS watch limit: say so in the page
            self._watching.set()  # nothing to wait for
            with self.lock:
                self.error = f"{self.path}: cannot watch for changes: {exc}"
                self.version += 1

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def status(self) -> dict:
        with self.lock:
            return {"version": self.version, "error": self.error, "findings": self.findings,
                    "status": self.sizes if not self.error else "render failed"}


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    state: PreviewState | None = None  # None while the constructor runs (a failed bind closes it)

    def server_close(self) -> None:
        super().server_close()
        if self.state is not None:
            self.state.close()


def _handler(state: PreviewState):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            route = self.path.split("?", 1)[0]
            if route == "/":
                self.send(PAGE.format(name=html.escape(state.path.name)), "text/html")
            elif route == "/email.html":
                self.send(state.html, "text/html")
            elif route == "/email-dark.html":
                self.send(_DARK_MEDIA.sub("@media all", state.html), "text/html")
            elif route == "/email.txt":
                self.send(state.text, "text/plain")
            elif route == "/version":
                self.send(json.dumps(state.status()), "application/json")
            else:
                self.send("not found", "text/plain", 404)

        def send(self, body: str, ctype: str, status: int = 200) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", f"{ctype}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # quiet: the CLI prints what matters
            pass

    return Handler


def make_server(path: str | Path, settings: Settings, *, host: str = "127.0.0.1", port: int = 0,
                checker: Checker = check_parsed) -> PreviewServer:
    """A ready-to-serve preview server (``server.server_address`` has the real port);
    ``server_close()`` also stops watching the file."""
    path = Path(path)
    state = PreviewState(path, settings, checker)
    try:
        server = PreviewServer((host, port), _handler(state))
    except OSError as exc:
        raise TwirMailError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    server.state = state
    state.watch()  # before the first render, so no change after it is missed
    state.refresh()
    return server
