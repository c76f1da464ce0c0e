#!/usr/bin/env python3
"""One-click unsubscribe throughput and latency over loopback, SQLite and PostgreSQL.

The app runs as `twir-mail serve` in a subprocess (uvicorn, one worker unless
--workers); N subscribers are seeded, then C concurrent keep-alive clients each
POST `List-Unsubscribe=One-Click` to distinct subscribers' links. The reference,
measured in the same run and interleaved with it, is a bare Starlette app
(bench/bare_app.py) on the same uvicorn under the same load. Checks every
subscriber really ended up unsubscribed.
Targets: >= 0.10 of the bare app's requests/s, and p99 < 50 ms.

    python bench/web.py [--full] [--requests N] [--concurrency 16] [--db sqlite,postgresql] [--repeat R]
Quick mode: 800 requests x 2 rounds per database; --full: 3000 x 3.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, load_note, median, mode, pg_database, size, verdict  # noqa: E402

from mailer.config import load_settings  # noqa: E402
from mailer.store import open_store  # noqa: E402
from mailer.store.schema import history, list_members, subscribers  # noqa: E402
from mailer.tokens import Signer  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"
BODY = b"List-Unsubscribe=One-Click"


def seed(store, n: int) -> list[int]:
    """n subscribed rows on `main`, inserted in bulk (the bench measures the web app, not adds)."""
    now = dt.datetime.now(dt.timezone.utc)
    main = store.list_id("main")
    rows = []
    for i in range(n):
        norm = f"bench{i}@example.com"
        rows.append({"email": norm, "email_norm": norm, "email_hash": store.email_hash(norm), "status": "subscribed",
                     "source": "bench", "created_at": now, "updated_at": now})
    with store.engine.begin() as conn:
        conn.execute(sa.insert(subscribers), rows)
        ids = list(conn.execute(sa.select(subscribers.c.id).order_by(subscribers.c.id)).scalars())
        conn.execute(sa.insert(list_members), [{"list_id": main, "subscriber_id": i, "added_at": now} for i in ids])
        conn.execute(sa.insert(history), [{"subscriber_id": i, "at": now, "new_status": "subscribed",
                                           "reason": "bench"} for i in ids])
    return ids


async def client(port: int, paths: asyncio.Queue, latencies: list[float], statuses: list[int]) -> None:
    """One keep-alive HTTP/1.1 connection sending requests back to back (minimal client overhead)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            try:
                path = paths.get_nowait()
            except asyncio.QueueEmpty:
                return
            request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\n"
                       f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses.append(int(head.split(b" ", 2)[1]))
    finally:
        writer.close()


async def run_load(port: int, paths: list[str], concurrency: int) -> tuple[float, list[float], list[int]]:
    queue: asyncio.Queue = asyncio.Queue()
    for p in paths:
        queue.put_nowait(p)
    latencies: list[float] = []
    statuses: list[int] = []
    start = time.perf_counter()
    await asyncio.gather(*(client(port, queue, latencies, statuses) for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, statuses


def start_server(config: Path, port: int, workers: int) -> subprocess.Popen:
    return _start([sys.executable, "-m", "mailer", "--config", str(config), "serve",
                   "--port", str(port), "--workers", str(workers)], port, "/healthz")


def start_bare(port: int, workers: int) -> subprocess.Popen:
    """The reference app on the same uvicorn, started as `serve` starts it (log level warning)."""
    return _start([sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(ROOT / "bench"),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                   "--log-level", "warning"], port, None)


def _start(args: list[str], port: int, probe: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
    env.update(TWIR_MAIL_SECRET_KEY=SECRET, PYTHONPATH=str(ROOT))
    # A file, not a pipe: `serve` logs a line per request, and a pipe nobody reads fills up
    # and stalls the server mid-benchmark.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if probe:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=1).read()
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"server died: {log.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def stats(elapsed: float, lat: list[float], statuses: list[int]) -> dict:
    lat_ms = sorted(x * 1000 for x in lat)
    return {"rps": len(lat) / elapsed, "p50": statistics.median(lat_ms), "p99": lat_ms[int(len(lat_ms) * 0.99) - 1],
            "non200": sum(1 for s in statuses if s != 200)}


def bench(db: str, n: int, rounds: int, concurrency: int, workers: int) -> dict:
    """Interleaved rounds of twir-mail and the bare app; per-round figures for each."""
    tmp = Path(tempfile.mkdtemp(prefix="twir-web-bench-"))
    drop = None
    url = f"sqlite:///{tmp / 'bench.db'}"
    if db == "postgresql":
        url, drop = pg_database()
    config = tmp / "twir-mail.toml"
    port, bare_port = free_port(), free_port()
    config.write_text(f'[database]\nurl = "{url}"\n[web]\nbase_url = "http://127.0.0.1:{port}"\n')
    settings = load_settings(config, env={"TWIR_MAIL_SECRET_KEY": SECRET})
    procs = []
    runs: dict[str, list[dict]] = {"twir-mail": [], "bare": []}
    try:
        with open_store(settings, upgrade=True) as store:
            ids = seed(store, n * rounds + 50)
            main = store.list_id("main")
            signer = Signer(SECRET)
            paths = [f"/unsubscribe/{signer.unsubscribe_token(i, main)}" for i in ids]
            procs = [start_server(config, port, workers), start_bare(bare_port, workers)]
            for p in (port, bare_port):  # warm-up: pools, caches
                asyncio.run(run_load(p, paths[-50:], min(concurrency, 50)))
            for r in range(rounds):
                batch = paths[r * n:(r + 1) * n]
                order = [("twir-mail", port), ("bare", bare_port)]
                for name, p in (order if r % 2 == 0 else order[::-1]):
                    runs[name].append(stats(*asyncio.run(run_load(p, batch, concurrency))))
            done = store.count()["unsubscribed"] - 50
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        if drop:
            drop()
    return {"db": db, "runs": runs, "requests": n * rounds, "unsubscribed": done}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=size(800, 3000), help="requests per round")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--repeat", type=int, default=size(2, 3), help="interleaved rounds per database")
    args = ap.parse_args()
    print(f"web bench, {mode()}: one-click unsubscribe, {args.requests} requests x {args.repeat} rounds, "
          f"{args.concurrency} concurrent clients, {args.workers} server worker(s); {load_note()}")
    for db in args.db.split(","):
        result = bench(db, args.requests, args.repeat, args.concurrency, args.workers)
        report(result)


def report(r: dict) -> None:
    ours, bare = ({k: median(run[k] for run in r["runs"][side]) for k in ("rps", "p50", "p99")}
                  for side in ("twir-mail", "bare"))
    non200 = sum(run["non200"] for run in r["runs"]["twir-mail"])
    print(f"  {r['db']}: twir-mail {ours['rps']:.0f} req/s, p50 {ours['p50']:.1f} ms, p99 {ours['p99']:.1f} ms; "
          f"bare Starlette {bare['rps']:.0f} req/s, p99 {bare['p99']:.1f} ms (medians of rounds); "
          f"non-200 {non200}, unsubscribed {r['unsubscribed']}/{r['requests']}")
    correct = non200 == 0 and r["unsubscribed"] == r["requests"]
    verdict(f"{r['db']} req/s vs bare app", f"{ours['rps'] / bare['rps']:.3f}",
            ours["rps"] / bare["rps"] >= 0.10 and correct, ">= 0.100 (and every request a 200 that unsubscribed)")
    verdict(f"{r['db']} p99", f"{ours['p99']:.1f} ms", ours["p99"] < 50, "< 50 ms")


if __name__ == "__main__":
    main()
