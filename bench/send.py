"""Send throughput, pacing and the ledger's load on PostgreSQL; prints figures, asserts nothing.

    python bench/send.py [--full] [--recipients N] [--moto-recipients M] [--rate 100] [--pg-recipients P]
                         [--only a|b|c]

(a) per-recipient cost: the whole send pipeline (ledger claims and records in
    SQLite, token, per-recipient MIME build, worker threads) with a null-sink
    transport, N recipients of a real corpus issue. Prints messages/s and the
    process's peak RSS. Targets: >= 3,000 messages/s, < 250 MB.
(b) pacing: the same pipeline through the SES transport against a moto server
    (separate process, real HTTP, warmed up first) at --rate for M recipients.
    Prints achieved / min(set rate, the server's unpaced ceiling measured in the
    same run) (target >= 0.95), throttling retries and failures (target 0), and
    the most sends started in any one-second window (must be <= rate).
(c) several senders on PostgreSQL: 4 processes share one campaign of P recipients
    through the null transport; PostgreSQL transactions committed per 1,000
    messages (pg_stat_database.xact_commit delta over the processes' lifetime,
    start-up reads included). Target: <= 50 (at least 20 messages per transaction).
Quick mode: N=10,000, M=200, P=4,000; --full: N=100,000, M=1,000, P=20,000.
"""

from __future__ import annotations

import argparse
import bisect
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import corpus_root, load_note, mode, size, verdict  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from mailer.sending import campaign as cmp  # noqa: E402
from mailer.config import load_settings, with_overrides  # noqa: E402
from mailer.issue.parse import parse_issue  # noqa: E402
from mailer.models import CampaignStatus  # noqa: E402
from mailer.issue.render import render_issue  # noqa: E402
from mailer.store import open_store  # noqa: E402
from mailer.store.engine import utcnow  # noqa: E402
from mailer.store.schema import list_members, subscribers  # noqa: E402
from mailer.sending.transport import NullTransport  # noqa: E402
from mailer.sending.transport.ses import SesTransport  # noqa: E402

CORPUS = corpus_root(ROOT) / "twir"
PG_SERVER = os.environ.get("TWIRMAIL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_SENDERS = 4


def issue_file() -> Path:
    issues = sorted(CORPUS.glob("*.md"))
    return issues[-1] if issues else ROOT / "tests" / "data" / "send" / "issue-700.md"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(store, n: int) -> None:
    """n subscribed members of `main`, inserted in bulk (the importer's job, not measured)."""
    now, list_id = utcnow(), store.list_id("main")
    with store.engine.begin() as conn:
        for start in range(0, n, 5000):
            rows = [{"email": f"reader{i}@example.com", "email_norm": f"reader{i}@example.com",
                     "email_hash": store.email_hash(f"reader{i}@example.com"), "status": "subscribed",
                     "source": "bench", "created_at": now, "updated_at": now}
                    for i in range(start, min(n, start + 5000))]
            conn.execute(subscribers.insert(), rows)
        conn.execute(list_members.insert().from_select(
            ["list_id", "subscriber_id", "added_at"],
            sa.select(sa.literal(list_id), subscribers.c.id, sa.literal(now))))


def bench_settings(url: str, **overrides):
    overrides.setdefault("send", {"workers": int(os.environ.get("BENCH_WORKERS", "8"))})
    settings = with_overrides(load_settings(env={}), database={"url": url}, **overrides)
    return replace(settings, secret_key="bench-secret-0123456789abcdef",
                   web=replace(settings.web, base_url="https://mail.example.org"))


def setup(tmp: Path, n: int, **overrides):
    overrides.setdefault("send", {"workers": int(os.environ.get("BENCH_WORKERS", "8"))})
    settings = load_settings(env={})
    settings = with_overrides(settings, database={"url": f"sqlite:///{tmp / 'bench.db'}"}, **overrides)
    settings = replace(settings, secret_key="bench-secret-0123456789abcdef",
                       web=replace(settings.web, base_url="https://mail.example.org"))
    store = open_store(settings)
    fill(store, n)
    rendered = render_issue(parse_issue(issue_file()), settings)
    return settings, store, rendered


def bench_null(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings, store, rendered = setup(Path(tmp), n)
        sink = NullTransport()
        rss_before = peak_rss_mb()
        started, cpu = time.perf_counter(), time.process_time()
        c = cmp.start(store, rendered, settings, sink, list_name="main")
        frozen = time.perf_counter()
        report = cmp.deliver(store, c, rendered, sink, settings, rate=None)
        done, cpu = time.perf_counter(), time.process_time() - cpu
        assert report.status == CampaignStatus.DONE and sink.count == n, (report.status, sink.count)
        print(f"(a) null sink, {n} recipients, issue {rendered.issue.number} "
              f"({rendered.html_bytes / 1024:.1f} KiB HTML, {sink.bytes / n / 1024:.1f} KiB/message), "
              f"{settings.send.workers} workers, SQLite ledger")
        print(f"    freeze recipients: {frozen - started:.2f} s")
        print(f"    send: {done - frozen:.2f} s = {n / (done - frozen):,.0f} messages/s "
              f"(incl. freeze: {n / (done - started):,.0f}/s)")
        print(f"    CPU time: {cpu:.2f} s = {n / cpu:,.0f} messages per CPU-second "
              f"(load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"    peak RSS: {peak_rss_mb():.0f} MB (before the send: {rss_before:.0f} MB)")
        verdict("(a) null-sink throughput", f"{n / (done - frozen):,.0f} messages/s", n / (done - frozen) >= 3000,
                ">= 3,000/s")
        verdict("(a) peak RSS", f"{peak_rss_mb():.0f} MB", peak_rss_mb() < 250, "< 250 MB")
        store.close()


class Recording:
    """Wraps a transport; records when each send starts."""

    def __init__(self, inner):
        self.inner, self.name, self.local = inner, inner.name, inner.local
        self.starts: list[float] = []
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def send(self, raw, **kw):
        started = time.monotonic()
        with self.lock:
            self.starts.append(started)
        try:
            return self.inner.send(raw, **kw)
        finally:
            self.latencies.append(time.monotonic() - started)

    def close(self):
        self.inner.close()


def moto_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def bench_moto(n: int, rate: float) -> None:
    import boto3

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[k] = "testing"
    proc, url = moto_server()
    try:
        boto3.client("ses", region_name="us-east-1", endpoint_url=url).verify_domain_identity(
            Domain="this-week-in-rust.org")
        with tempfile.TemporaryDirectory() as tmp:
            settings, store, rendered = setup(Path(tmp), n, transport={"kind": "ses"},
                                              ses={"endpoint_url": url, "region": "us-east-1"})
            transport = Recording(SesTransport(settings.ses, workers=settings.send.workers))
            c = cmp.start(store, rendered, settings, transport, list_name="main")
            # moto answers its first requests slowly (its SES backend loads and warms up on
            # first use: p95 ~250 ms in the first second): not what pacing is about.
            server_capacity(transport.inner, rendered, settings, 2 * settings.send.workers)
            cpu = time.process_time()
            report = cmp.deliver(store, c, rendered, transport, settings, rate=rate)
            cpu = time.process_time() - cpu
            starts = sorted(transport.starts)
            span = starts[-1] - starts[0]
            achieved = (len(starts) - 1) / span if span > 0 else float("inf")
            worst = max(bisect.bisect_left(starts, t + 1.0) - i for i, t in enumerate(starts))
            p = report.progress
            capacity = server_capacity(transport.inner, rendered, settings, max(50, n // 2))
            print(f"(b) SES transport -> moto server, {n} recipients at --rate {rate:g}, "
                  f"{settings.send.workers} workers")
            print(f"    sent {report.counts['sent']}, failed {report.counts['failed']}, "
                  f"throttling/5xx retries {p.retries}, status {report.status.value}")
            print(f"    achieved {achieved:.2f}/s between first and last send = {achieved / rate:.3f} of the set "
                  f"rate; whole run incl. start-up {p.sent / p.elapsed:.2f}/s ({p.sent / p.elapsed / rate:.3f})")
            print(f"    SendEmail latency: median {statistics.median(transport.latencies) * 1000:.0f} ms, "
                  f"p95 {sorted(transport.latencies)[int(len(transport.latencies) * 0.95)] * 1000:.0f} ms")
            print(f"    sender CPU: {cpu / n * 1000:.1f} ms per message; load average "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (moto server runs on the same machine)")
            print(f"    most sends started in any 1 s window: {worst} (limit {int(rate)})")
            # Pacing can only reach what the server takes: moto on these 2 CPUs answers a
            # message of this size in ~10 ms of its own CPU, about 90/s at best.
            ceiling = min(rate, capacity)
            print(f"    reference, after the run: the same transport and message from {settings.send.workers} "
                  f"threads, no pacing, no ledger: {capacity:.1f}/s (the server's ceiling)")
            verdict("(b) achieved / min(set rate, server ceiling)", f"{achieved / ceiling:.3f}",
                    achieved / ceiling >= 0.95, ">= 0.95")
            verdict("(b) sends in any 1 s window", str(worst), worst <= rate, f"<= {int(rate)}")
            verdict("(b) throttling retries and failures", f"{p.retries} / {report.counts['failed']}",
                    p.retries == 0 and report.counts["failed"] == 0, "0 / 0")
            store.close()
    finally:
        proc.terminate()
        proc.wait()


def server_capacity(transport, rendered, settings, count: int) -> float:
    """Messages/s the server takes from ``workers`` threads sending ``count`` campaign messages, unpaced."""
    from concurrent.futures import ThreadPoolExecutor

    from mailer.sending.message import MessageTemplate

    template = MessageTemplate(rendered, settings)
    raw = template.sample()
    with ThreadPoolExecutor(settings.send.workers) as pool:
        started = time.monotonic()
        list(pool.map(lambda i: transport.send(raw, sender=template.sender, recipient=f"capacity{i}@example.com",
                                               tags={}), range(count)))
    return count / (time.monotonic() - started)


def pg_sender(url: str, campaign_id: int) -> None:
    """One of the (c) processes: send the shared campaign's queued rows through the null transport."""
    settings = bench_settings(url)
    with open_store(settings) as store:
        rendered = render_issue(parse_issue(issue_file()), settings)
        sink = NullTransport()
        cmp.deliver(store, store.campaign(campaign_id), rendered, sink, settings, rate=None)
        print(sink.count)


def xact_commit(admin, name: str) -> int:
    with admin.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return conn.exec_driver_sql("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                                    (name,)).scalar()


def bench_pg_senders(n: int) -> None:
    import uuid

    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    name = f"twirmail_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    try:
        settings = bench_settings(url)
        with open_store(settings, upgrade=True) as store:
            fill(store, n)
            rendered = render_issue(parse_issue(issue_file()), settings)
            campaign = cmp.start(store, rendered, settings, NullTransport(), list_name="main")
        time.sleep(1.5)  # let the set-up's statistics reach pg_stat_database first
        before = xact_commit(admin, name)
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "--pg-sender", url, str(campaign.id)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(PG_SENDERS)]
        outs = [p.communicate() for p in procs]
        elapsed = time.perf_counter() - started
        if any(p.returncode for p in procs):
            sys.exit("error: a sender failed: " + " | ".join(err.strip().splitlines()[-1] for _, err in outs if err))
        time.sleep(1.5)  # exited backends flush their counters; give the collector a moment
        commits = xact_commit(admin, name) - before
        with open_store(settings) as store:
            counts = store.delivery_counts(campaign.id)
        sent = sum(int(out.strip() or 0) for out, _ in outs)
        per_process = [int(out.strip() or 0) for out, _ in outs]
        print(f"(c) {PG_SENDERS} processes, one PostgreSQL campaign of {n} recipients, null transport, "
              f"{settings.send.workers} workers each")
        print(f"    sent {sent} (per process {per_process}), ledger sent {counts['sent']}, "
              f"queued {counts['queued']}, sending {counts['sending']}; {elapsed:.1f} s")
        print(f"    transactions committed: {commits} = {commits / sent * 1000:.1f} per 1,000 messages")
        verdict("(c) PostgreSQL transactions per 1,000 messages", f"{commits / sent * 1000:.1f}",
                commits / sent * 1000 <= 50 and counts["sent"] == n == sent, "<= 50 (and every row sent once)")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--pg-sender":
        pg_sender(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipients", type=int, default=size(10_000, 100_000))
    ap.add_argument("--moto-recipients", type=int, default=size(200, 1000))
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--pg-recipients", type=int, default=size(4_000, 20_000))
    ap.add_argument("--only", choices=("a", "b", "c"))
    args = ap.parse_args()
    print(f"send bench, {mode()}; {load_note()}")
    if args.only in (None, "a"):
        bench_null(args.recipients)
    if args.only in (None, "b"):
        bench_moto(args.moto_recipients, args.rate)
    if args.only in (None, "c"):
        bench_pg_senders(args.pg_recipients)


if __name__ == "__main__":
    main()
