"""Lambda cold start and warm latency of mailer.lambda_entry.handler, in-process.

Configured as deploy/aws/template.yaml configures the function: the secret key
and database URL only as SSM parameter names, read at cold start from SSM
(moto's server on loopback: the figure includes importing boto3 and one
GetParameters round trip, not the network latency of a real region). Each trial
is a fresh interpreter (as a new Lambda container) that imports nothing else
before its first event: time to import the entry module (the web stack, and the
secrets fetched), time of the first event (builds the app, opens the SQLite
store), then the median of 200 warm GET /healthz and GET /unsubscribe/TOKEN.
Run: .venv/bin/python bench/lambda_cold_start.py [trials]
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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
    for _ in range(200):
        a = time.perf_counter(); r = entry.handler(ev(path), None); times.append(time.perf_counter() - a)
        assert r["statusCode"] == 200, r
    warm[path.split("/")[1]] = sorted(times)[len(times) // 2]
print(json.dumps({"import": t1 - t0, "first": t3 - t2, **warm}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would bury the figures
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            aws_env = {"AWS_ENDPOINT_URL_SSM": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
            _, token = prepare(tmp, aws_env)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIR_MAIL_", "AWS_", "SSM_"))}
            env.update(aws_env, PYTHONPATH=str(ROOT), SSM_TWIR_MAIL_SECRET_KEY="/twir-mail/secret-key",
                       SSM_TWIR_MAIL_DATABASE_URL="/twir-mail/database-url",
                       TWIR_MAIL_WEB_BASE_URL="https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com")
            for _ in range(trials):
                out = subprocess.run([sys.executable, "-c", TRIAL, str(ROOT / "tests/data/lambda/http-api-v2.json"),
                                      token], env=env, cwd=tmp, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"error: trial failed: {out.stderr.strip().splitlines()[-1:]}")
                results.append(json.loads(out.stdout))
    finally:
        server.stop()
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"trials: {trials}")
    print(f"cold import of mailer.lambda_entry (the web stack; both secrets read from SSM, moto on loopback): "
          f"{med['import'] * 1000:.0f} ms (median)")
    print(f"first event, GET /unsubscribe/TOKEN (builds the app, opens the store): "
          f"{med['first'] * 1000:.0f} ms (median)")
    print(f"cold start total (import + first event): {(med['import'] + med['first']) * 1000:.0f} ms (median)")
    print(f"warm GET /healthz: {med['healthz'] * 1000:.2f} ms (median of medians)")
    print(f"warm GET /unsubscribe/TOKEN: {med['unsubscribe'] * 1000:.2f} ms (median of medians)")


if __name__ == "__main__":
    main()
