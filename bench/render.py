"""Rendering speed and size over the corpus; prints figures, asserts nothing.

    python bench/render.py [CORPUS_DIR]

- warm: per-stage median milliseconds per issue (parse + render stages), after
  one warm-up pass, over ROUNDS passes of the whole corpus;
- cold: wall time of `twir-mail render ONE_ISSUE` in a fresh process (median of 5);
- size: HTML and text size median/max over the corpus.
Targets: warm total median < 60 ms, cold < 1.5 s, HTML max <= 90 KiB, median <= 70 KiB.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailer.config import Settings  # noqa: E402
from mailer.issue.parse import parse_issue  # noqa: E402
from mailer.issue.render import render_issue  # noqa: E402

ROUNDS = 3
STAGES = ("parse", "markdown", "mjml", "inject", "inline", "minify", "text")


def corpus_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    return Path(os.environ.get("TWIRMAIL_CORPUS", ROOT.parent / "shared" / "corpus")) / "twir"


def warm(files: list[Path], settings: Settings):
    per_stage: dict[str, list[float]] = {s: [] for s in STAGES}
    totals, html_sizes, text_sizes = [], [], []
    for f in files:  # warm-up: imports, Markdown pipeline, template, CSS parsing caches
        render_issue(parse_issue(f), settings)
    for _ in range(ROUNDS):
        for f in files:
            timings: dict[str, float] = {}
            start = time.perf_counter()
            issue = parse_issue(f)
            timings["parse"] = (time.perf_counter() - start) * 1000
            rendered = render_issue(issue, settings, timings=timings)
            totals.append((time.perf_counter() - start) * 1000)
            for stage in STAGES:
                per_stage[stage].append(timings.get(stage, 0.0))
            html_sizes.append(rendered.html_bytes)
            text_sizes.append(rendered.text_bytes)
    return per_stage, totals, html_sizes, text_sizes


def cold(issue: Path) -> list[float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
    env["PYTHONPATH"] = str(ROOT)
    times = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mailer", "render", str(issue), "-o", out],
                           check=True, env=env, cwd=out, capture_output=True)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    files = sorted(p for p in corpus_dir().glob("*") if p.suffix in (".md", ".markdown"))
    if not files:
        sys.exit(f"no issues in {corpus_dir()}")
    settings = Settings(base_dir=ROOT)
    per_stage, totals, html_sizes, text_sizes = warm(files, settings)
    print(f"corpus: {len(files)} issues, {ROUNDS} warm rounds")
    print("warm median ms per issue by stage:")
    for stage in STAGES:
        print(f"  {stage:9s} {statistics.median(per_stage[stage]):7.2f}")
    print(f"  {'total':9s} {statistics.median(totals):7.2f}   (p90 {statistics.quantiles(totals, n=10)[-1]:.2f}, "
          f"max {max(totals):.2f})   target < 60")
    times = cold(files[-1])
    print(f"cold `twir-mail render {files[-1].name}`: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f})   target < 1.5")
    kib = 1024
    print(f"HTML size: median {statistics.median(html_sizes) / kib:.1f} KiB, max {max(html_sizes) / kib:.1f} KiB"
          f"   targets <= 70 / <= 90")
    print(f"text size: median {statistics.median(text_sizes) / kib:.1f} KiB, max {max(text_sizes) / kib:.1f} KiB")


if __name__ == "__main__":
    main()
