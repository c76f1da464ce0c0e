"""Lambda cold start and warm latency of mailer.lambda_entry.handler, in-process.

Configured as deploy/aws/template.yaml configures the function: the secret key
and database URL only as SSM parameter names, read at cold start from SSM
(moto's server on loopback: the figure includes one GetParameters round trip,
signed with the standard library as Lambda's environment credentials allow, so
no boto3 import; not the network latency of a real region). Each trial
is a fresh interpreter (as a new Lambda container) that imports nothing else
before its first event: time to import the entry module (the web stack, and the
secrets fetched), time of the first event (builds the app, opens the SQLite
store), then the median of warm GET /healthz and GET /unsubscribe/TOKEN.
The reference, interleaved trial by trial in the same run: a bare Mangum +
Starlette handler answering the same event in a fresh interpreter.
Target: import + first response <= 0.5 s (median).
Run: .venv/bin/python bench/lambda_cold_start.py [--full] [trials]
Quick mode: 5 trials of each, 50 warm requests; --full: 11 trials, 200 warm requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import compile_bytecode, free_port, load_note, median, mode, size, verdict  # noqa: E402
SECRET = "bench-secret-key-0123456789"
TRIAL = r"""
import copy, json, sys, time
t0 = time.perf_counter()
import mailer.lambda_entry as entry
t1 = time.perf_counter()
base, token = json.load(open(sys.argv[1])), sys.argv[2]
def ev(path):
    e = copy.deepcopy(base); e["rawPath"] = e["requestContext"]["http"]["path"] = path; return e
t2 = time.perf_counter(); r = entry.handler(ev(f"/unsubscribe/{token}"), None); t3 = time.perf_counter()
assert r["statusCode"] == 200, r
warm = {}
for path in ("/healthz", f"/unsubscribe/{token}"):
    times = []
    for _ in range(int(sys.argv[3])):
        a = time.perf_counter(); r = entry.handler(ev(path), None); times.append(time.perf_counter() - a)
        assert r["statusCode"] == 200, r
    warm[path.split("/")[1]] = sorted(times)[len(times) // 2]
print(json.dumps({"import": t1 - t0, "first": t3 - t2, **warm}))
"""
BARE = r"""
import copy, json, sys, time
t0 = time.perf_counter()
from mangum import Mangum
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
async def page(request):
    return HTMLResponse("<!doctype html><html><body><h1>Unsubscribe</h1></body></html>")
handler = Mangum(Starlette(routes=[Route("/unsubscribe/{token}", page)]), lifespan="off")
t1 = time.perf_counter()
e = json.load(open(sys.argv[1])); e["rawPath"] = e["requestContext"]["http"]["path"] = "/unsubscribe/" + sys.argv[2]
t2 = time.perf_counter(); r = handler(e, None); t3 = time.perf_counter()
assert r["statusCode"] == 200, r
print(json.dumps({"import": t1 - t0, "first": t3 - t2}))
"""


def prepare(tmp: str, aws_env: dict[str, str]) -> tuple[str, str]:
    """SSM parameters in moto, a migrated SQLite store with one subscriber; returns (db url, token)."""
    import boto3

    from mailer.config import load_settings
    from mailer.store import open_store
    from mailer.tokens import Signer

    url = f"sqlite:///{tmp}/bench.db"
    ssm = boto3.client("ssm", region_name=aws_env["AWS_DEFAULT_REGION"], endpoint_url=aws_env["AWS_ENDPOINT_URL_SSM"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ssm.put_parameter(Name="/twir-mail/secret-key", Value=SECRET, Type="SecureString")
    ssm.put_parameter(Name="/twir-mail/database-url", Value=url, Type="SecureString")
    settings = load_settings(env={"TWIR_MAIL_SECRET_KEY": SECRET, "TWIR_MAIL_DATABASE_URL": url})
    store = open_store(settings)
    sub = store.add("reader@example.com")
    token = Signer(SECRET).unsubscribe_token(sub.id, store.list_id("main"))
    store.close()
    return url, token


def main() -> int:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would bury the figures
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else size(5, 11)
    warm_requests = size(50, 200)
    compile_bytecode(ROOT)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    results: dict[str, list[dict]] = {"twir-mail": [], "bare": []}
    event = str(ROOT / "tests/data/lambda/http-api-v2.json")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            aws_env = {"AWS_ENDPOINT_URL_SSM": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
            _, token = prepare(tmp, aws_env)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIR_MAIL_", "AWS_", "SSM_"))}
            env.update(aws_env, PYTHONPATH=str(ROOT), SSM_TWIR_MAIL_SECRET_KEY="/twir-mail/secret-key",
                       SSM_TWIR_MAIL_DATABASE_URL="/twir-mail/database-url",
                       TWIR_MAIL_WEB_BASE_URL="https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com")
            runs = {"twir-mail": [TRIAL, event, token, str(warm_requests)], "bare": [BARE, event, token]}
            for i in range(trials):
                for name in (["twir-mail", "bare"] if i % 2 == 0 else ["bare", "twir-mail"]):
                    # A new container's /tmp is empty: no Jinja2 bytecode cache from an earlier trial.
                    fresh_tmp = tempfile.mkdtemp(dir=tmp)
                    out = subprocess.run([sys.executable, "-c", *runs[name]], env={**env, "TMPDIR": fresh_tmp},
                                         cwd=tmp, capture_output=True, text=True)
                    if out.returncode:
                        sys.exit(f"error: {name} trial failed: {out.stderr.strip().splitlines()[-1:]}")
                    results[name].append(json.loads(out.stdout))
    finally:
        server.stop()
    med = {name: {k: median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
    ours, bare = med["twir-mail"], med["bare"]
    print(f"lambda cold start, {mode()}: {trials} fresh interpreters each, interleaved; {load_note()}")
    print(f"  twir-mail: import of mailer.lambda_entry (web stack; both secrets read from SSM, moto on loopback) "
          f"{ours['import'] * 1000:.0f} ms, first event GET /unsubscribe/TOKEN (builds the app, opens the store) "
          f"{ours['first'] * 1000:.0f} ms (medians)")
    print(f"  bare Mangum + Starlette: import {bare['import'] * 1000:.0f} ms, first event {bare['first'] * 1000:.0f} ms")
    total, ref = ours["import"] + ours["first"], bare["import"] + bare["first"]
    print(f"  warm: GET /healthz {ours['healthz'] * 1000:.2f} ms, GET /unsubscribe/TOKEN "
          f"{ours['unsubscribe'] * 1000:.2f} ms (median of {warm_requests}, median over trials)")
    verdict("import + first response", f"{total:.3f} s (bare handler {ref:.3f} s, {total / ref:.1f}x)",
                 total <= 0.5, "<= 0.500 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
