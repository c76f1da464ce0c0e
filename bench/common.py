"""What every bench script shares: quick/full sizes, interleaved timing, the verdict line.

Quick mode is the default (`make bench` stays under 3 minutes on 2 CPUs);
``--full`` on the command line or ``BENCH_FULL=1`` selects the full sizes.
Figures that have a reference are measured against it in the same run,
interleaved, so a busy machine slows both sides instead of reading as a
regression: the verdict is on the ratio.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

FULL = "--full" in sys.argv or os.environ.get("BENCH_FULL", "") not in ("", "0")
if "--full" in sys.argv:
    sys.argv.remove("--full")


def corpus_root(root: Path) -> Path:
    """TWIRMAIL_CORPUS, else the first shared/corpus beside the checkout or above it (worktrees)."""
    if os.environ.get("TWIRMAIL_CORPUS"):
        return Path(os.environ["TWIRMAIL_CORPUS"])
    for parent in root.parents:
        if (parent / "shared" / "corpus").is_dir():
            return parent / "shared" / "corpus"
    return root.parent / "shared" / "corpus"


def compile_bytecode(root: Path) -> None:
    """Write mailer/'s .pyc files before timing fresh processes.

    An installed package has them (pip compiles at install); a checkout run with
    PYTHONDONTWRITEBYTECODE=1 (as here) would otherwise recompile every module in
    every fresh process, a cost the site-packages references never pay.
    """
    import compileall

    compileall.compile_dir(str(root / "mailer"), quiet=1)


def size(quick, full):
    """The quick-mode value, or the full one with --full / BENCH_FULL=1."""
    return full if FULL else quick


def mode() -> str:
    return "full" if FULL else "quick (--full or BENCH_FULL=1 for full sizes)"


def interleaved(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each case, the cases taking turns (order rotated each round)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - start)
    return times


def median(values) -> float:
    return statistics.median(values)


def verdict(label: str, figure: str, ok: bool, target: str) -> bool:
    """One result line: the figure, its target, PASS or BELOW."""
    print(f"  {label}: {figure}   target {target}   {'PASS' if ok else 'BELOW'}", flush=True)
    return ok


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


PG_SERVER = (os.environ.get("TWIRMAIL_BENCH_PG")
             or os.environ.get("TWIRMAIL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_database():
    """(url, drop) of a throwaway PostgreSQL database on PG_SERVER; raises if it is unreachable."""
    import uuid

    import sqlalchemy as sa

    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    name = f"twirmail_bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except BaseException:
        admin.dispose()
        raise

    def drop():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return sa.engine.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False), drop


def median_ms(fn, runs: int) -> float:
    """Median milliseconds of ``runs`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def on_both_databases(bench: Callable[[str, str], None], name: str) -> None:
    """``bench(url, label)`` on a scratch SQLite file, then on a throwaway PostgreSQL database
    (dropped afterwards; skipped with a line if the server is not reachable)."""
    import tempfile

    import sqlalchemy as sa

    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{tmp}/{name}.db", "sqlite")
    try:
        url, drop = pg_database()
    except sa.exc.OperationalError:
        print("postgresql: not reachable, skipped")
        return
    try:
        bench(url, "postgresql")
    finally:
        drop()
