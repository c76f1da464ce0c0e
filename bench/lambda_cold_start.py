"""Lambda cold start and warm latency of mailer.lambda_entry.handler, in-process.

Each trial is a fresh interpreter (as a new Lambda container): time to import the
entry module, time of the first event (builds the app, opens the SQLite store),
then the median of 200 warm GET /healthz and GET /unsubscribe/TOKEN events.
Run: .venv/bin/python bench/lambda_cold_start.py [trials]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIAL = r"""
import copy, json, sys, time
t0 = time.perf_counter()
import mailer.lambda_entry as entry
t1 = time.perf_counter()
from mailer.config import load_settings
from mailer.store import open_store
from mailer.tokens import Signer
s = load_settings(); st = open_store(s)
sub = st.add(f"reader{time.time_ns()}@example.com")
token = Signer(s.secret_key).unsubscribe_token(sub.id, st.list_id("main")); st.close()
base = json.load(open(sys.argv[1]))
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


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
        env.update(PYTHONPATH=str(ROOT), TWIR_MAIL_SECRET_KEY="bench-secret-key-0123456789",
                   TWIR_MAIL_DATABASE_URL=f"sqlite:///{tmp}/bench.db")
        for _ in range(trials):
            out = subprocess.run([sys.executable, "-c", TRIAL, str(ROOT / "tests/data/lambda/http-api-v2.json")],
                                 env=env, cwd=tmp, capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout))
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"trials: {trials}")
    print(f"cold import of mailer.lambda_entry: {med['import'] * 1000:.0f} ms (median)")
    print(f"first event, GET /unsubscribe/TOKEN (builds the app, opens the store): {med['first'] * 1000:.0f} ms (median)")
    print(f"warm GET /healthz: {med['healthz'] * 1000:.2f} ms (median of medians)")
    print(f"warm GET /unsubscribe/TOKEN: {med['unsubscribe'] * 1000:.2f} ms (median of medians)")


if __name__ == "__main__":
    main()
