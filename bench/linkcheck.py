"""`check --links` on one full issue against local servers; prints figures, asserts nothing.

    python bench/linkcheck.py [ISSUE]     (default: the latest issue of $TWIRMAIL_CORPUS/twir)

Every http(s) URL of the issue is rewritten to a local server, one server per
original host (so the per-host limit applies as it would on the internet),
each answering after LATENCY seconds; about 1 in 30 paths answers 404, one
host answers slowly. Three configurations, ROUNDS runs each, median wall time:
- reference: one request at a time (concurrency 1, per host 1), no cache;
- default: the shipped limits (16 at once, 2 per host), no cache;
- cached: the default again with the cache of the previous run (a second run
  in the same week).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailer.config import Settings, with_overrides  # noqa: E402
from mailer.issue.linkcheck import check_links  # noqa: E402
from mailer.issue.parse import parse_issue  # noqa: E402

LATENCY = 0.03  # seconds per answer: a nearby web server
SLOW = 0.5  # the slow host
ROUNDS = 3
_URL = re.compile(r"https?://([A-Za-z0-9.-]+)(/[^\s)\]>\"']*)?")


class _Server:
    def __init__(self, delay: float, counter: list[int]):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self):  # noqa: N802
                counter.append(1)
                time.sleep(server.delay)
                dead = zlib.crc32(self.path.encode()) % 30 == 0
                self.send_response(404 if dead else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD

            def log_message(self, *args):
                pass

        self.delay = delay
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.port = self.httpd.server_address[1]


def localised(issue: Path, out: Path, counter: list[int]) -> tuple[Path, list[_Server]]:
    text = issue.read_text(encoding="utf-8")
    hosts = sorted({m.group(1).lower() for m in _URL.finditer(text)})
    servers = {h: _Server(SLOW if n == 0 else LATENCY, counter) for n, h in enumerate(hosts)}

    def swap(m):
        return f"http://127.0.0.1:{servers[m.group(1).lower()].port}{m.group(2) or '/'}"

    path = out / issue.name
    path.write_text(_URL.sub(swap, text), encoding="utf-8")
    return path, list(servers.values())


def main() -> None:
    corpus = Path(os.environ.get("TWIRMAIL_CORPUS", ROOT.parent / "shared" / "corpus")) / "twir"
    issue = Path(sys.argv[1]) if len(sys.argv) > 1 else sorted(corpus.glob("*.md"))[-1]
    counter: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        path, servers = localised(issue, Path(tmp), counter)
        logo = f"http://127.0.0.1:{servers[-1].port}/logo.png"
        parsed = parse_issue(path)
        base = with_overrides(Settings(), newsletter={"logo_url": logo})
        configs = {
            "reference (1 at a time)": dict(link_concurrency=1, link_per_host=1, link_cache_days=0),
            "default (16, 2 per host)": dict(link_cache_days=0),
        }
        print(f"{issue.name}: {len(servers)} hosts, {LATENCY * 1000:.0f} ms per answer ({SLOW * 1000:.0f} ms "
              f"for one host)")
        for name, check in configs.items():
            walls, requests = [], []
            for _ in range(ROUNDS):
                counter.clear()
                settings = with_overrides(base, check={"link_cache": str(Path(tmp) / "none.json"), **check})
                findings, stats = check_links(parsed, settings)
                walls.append(stats.seconds)
                requests.append(len(counter))
            print(f"{name:28} median {statistics.median(walls):6.2f} s  "
                  f"requests {statistics.median(requests):.0f}  links {stats.urls}  warnings {len(findings)}")
        walls, requests, cached = [], [], 0
        for n in range(ROUNDS):
            cache = Path(tmp) / f"cache{n}.json"
            settings = with_overrides(base, check={"link_cache": str(cache)})
            check_links(parsed, settings)  # fills the cache
            counter.clear()
            findings, stats = check_links(parsed, settings)
            walls.append(stats.seconds)
            requests.append(len(counter))
            cached = stats.cached
        print(f"{'cached (second run)':28} median {statistics.median(walls):6.2f} s  "
              f"requests {statistics.median(requests):.0f}  from cache {cached}  warnings {len(findings)}")
        for s in servers:
            s.httpd.shutdown()
            s.httpd.server_close()


if __name__ == "__main__":
    main()
