"""Rendering speed and size over the corpus, against references in the same run.

    python bench/render.py [--full] [CORPUS_DIR]

- warm: per issue, interleaved, (a) twir-mail's parse + render (MJML layout,
  inlined CSS, minified HTML and the text part), (b) stock Python-Markdown alone
  with the same extensions as twir-mail (the floor), (b') the same with the
  site's extensions, (c) Markdown + Jinja2 + premailer, what TWIR's site does
  today minus Pelican. Target on the ratio of the medians: a/b <= 1.3 (TWIR's
  own c/b'); a/b' and a/c reported.
- cold: a fresh `twir-mail render ONE` and `twir-mail check ONE`, interleaved
  with a fresh `import markdown` + convert of the same file (the site's
  extensions; twir-mail's own reported too). Target <= 2.0. These are the
  editor's loop: a run after the first finds the compiled layout template and
  what premailer derives from content.css in the private cache folder; a first
  render with that folder empty is reported too (no target).
- per-stage medians (no target) and HTML size (targets: median <= 70 KiB, max <= 90 KiB).
Quick mode: every third issue, 2 rounds, 5 cold trials; --full: every issue, 5 rounds, 11 trials.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import compile_bytecode, corpus_root, interleaved, load_note, median, mode, size, verdict  # noqa: E402

from mailer.config import Settings  # noqa: E402
from mailer.issue import content  # noqa: E402
from mailer.issue.parse import parse_issue  # noqa: E402
from mailer.issue.render import render_issue  # noqa: E402

STAGES = ("markdown", "mjml", "inject", "inline", "minify", "text")
SITE_EXTENSIONS = getattr(content, "SITE_EXTENSIONS", content.EXTENSIONS)  # what the website runs
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>{{ css }}</style></head><body><div class="c"><h1>{{ title }}</h1>{{ body }}</div></body></html>"""
FLOOR = ("import sys, markdown; markdown.markdown(open(sys.argv[1], encoding='utf-8').read(), "
         "extensions={ext!r}, extension_configs={cfg!r})")


def corpus_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    return corpus_root(ROOT) / "twir"


class References:
    """Python-Markdown alone, and Markdown + Jinja2 + premailer (one converter, reset per call)."""

    def __init__(self, settings: Settings):
        import jinja2
        import markdown

        self.md = markdown.Markdown(extensions=SITE_EXTENSIONS, extension_configs=content.EXTENSION_CONFIGS,
                                    output_format="html")
        # twir-mail's own extension set, by name, on stock Python-Markdown.
        self.same = markdown.Markdown(extensions=content.EXTENSIONS, extension_configs=content.EXTENSION_CONFIGS,
                                      output_format="html")
        self.page = jinja2.Environment(autoescape=False).from_string(PAGE)
        self.css = (settings.templates_dir / "content.css").read_text(encoding="utf-8")

    def markdown(self, path: Path) -> str:
        return self.md.reset().convert(path.read_text(encoding="utf-8"))

    def same_extensions(self, path: Path) -> str:
        return self.same.reset().convert(path.read_text(encoding="utf-8"))

    def site(self, path: Path) -> str:
        import premailer

        html = self.page.render(title=path.stem, css=self.css, body=self.markdown(path))
        return premailer.transform(html, allow_network=False, disable_validation=True)


def warm(files: list[Path], settings: Settings, rounds: int):
    refs = References(settings)
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    sizes: list[int] = []

    def ours(f: Path, timings: dict | None = None):
        rendered = render_issue(parse_issue(f), settings, timings=timings)
        sizes.append(rendered.html_bytes)

    for f in files:  # warm-up: imports, pipelines, template and CSS caches
        ours(f), refs.site(f)
    times: dict[str, list[float]] = {"twir-mail": [], "same": [], "markdown": [], "site": []}
    for f in files:
        got = interleaved({"twir-mail": lambda: ours(f), "same": lambda: refs.same_extensions(f),
                           "markdown": lambda: refs.markdown(f), "site": lambda: refs.site(f)}, rounds)
        for name, values in got.items():
            times[name] += values
        timings: dict[str, float] = {}
        ours(f, timings)
        for s in STAGES:
            stages[s].append(timings.get(s, 0.0))
    return times, stages, sizes


def cold(issue: Path, trials: int) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
    env["PYTHONPATH"] = str(ROOT)
    floor = FLOOR.format(ext=list(SITE_EXTENSIONS), cfg=content.EXTENSION_CONFIGS)
    floor_same = FLOOR.format(ext=list(content.EXTENSIONS), cfg=content.EXTENSION_CONFIGS)
    compile_bytecode(ROOT)
    with tempfile.TemporaryDirectory() as out:
        def run(*args, ok=(0,), empty_cache=False):
            def call():
                # empty_cache: a first run (new machine, or content.css or a template just edited):
                # nothing in the private cache folder from an earlier trial.
                tmp = {"TMPDIR": tempfile.mkdtemp(dir=out)} if empty_cache else {}
                done = subprocess.run([sys.executable, *args], env={**env, **tmp}, cwd=out, capture_output=True)
                if done.returncode not in ok:
                    sys.exit(f"{' '.join(args)} failed:\n{done.stderr.decode(errors='replace')}")
            return call

        return interleaved({"render": run("-m", "mailer", "render", str(issue), "-o", out),
                            "render_first": run("-m", "mailer", "render", str(issue), "-o", out, empty_cache=True),
                            # exit 1 = the issue has errors (every recent one links the retired
                            # Mailchimp page): the check ran in full all the same.
                            "check": run("-m", "mailer", "check", str(issue), ok=(0, 1)),
                            "floor": run("-c", floor, str(issue)),
                            "floor_same": run("-c", floor_same, str(issue))}, trials)


def main() -> int:
    files = sorted(p for p in corpus_dir().glob("*") if p.suffix in (".md", ".markdown"))
    if not files:
        sys.exit(f"no issues in {corpus_dir()}")
    files = size(files[::3], files)
    rounds, trials = size(2, 5), size(5, 11)
    settings = Settings(base_dir=ROOT)
    print(f"render bench, {mode()}: {len(files)} issues x {rounds} rounds, {trials} cold trials; {load_note()}")
    times, stages, sizes = warm(files, settings, rounds)
    ms = {k: median(v) * 1000 for k, v in times.items()}
    print(f"  warm median per issue: twir-mail {ms['twir-mail']:.1f} ms; Python-Markdown alone, same extensions "
          f"{ms['same']:.1f} ms, site's extensions {ms['markdown']:.1f} ms; Markdown+Jinja2+premailer {ms['site']:.1f} ms")
    print("  twir-mail stages (median ms): " + ", ".join(f"{s} {median(stages[s]):.2f}" for s in STAGES))
    ok = verdict("warm render / Python-Markdown alone (same extensions)", f"{ms['twir-mail'] / ms['same']:.2f}x",
                 ms["twir-mail"] / ms["same"] <= 1.3, "<= 1.30x")
    print(f"  (for scale: / Python-Markdown with the site's extensions = {ms['twir-mail'] / ms['markdown']:.2f}x; "
          f"Markdown+Jinja2+premailer / Python-Markdown (site's) = {ms['site'] / ms['markdown']:.2f}x; "
          f"twir-mail / Markdown+Jinja2+premailer = {ms['twir-mail'] / ms['site']:.2f}x)")
    got = {k: median(v) for k, v in cold(files[-1], trials).items()}
    print(f"  cold, fresh process, {files[-1].name}: render {got['render']:.3f} s, check {got['check']:.3f} s, "
          f"import markdown + convert {got['floor']:.3f} s with the site's extensions, "
          f"{got['floor_same']:.3f} s with twir-mail's (medians)")
    for cmd in ("render", "check"):  # against the lighter floor, the site's extensions
        ok &= verdict(f"cold `twir-mail {cmd}` / markdown floor", f"{got[cmd] / got['floor']:.2f}x",
                      got[cmd] / got["floor"] <= 2.0, "<= 2.00x")
    print(f"  (for scale: against the floor with twir-mail's own extensions, render "
          f"{got['render'] / got['floor_same']:.2f}x, check {got['check'] / got['floor_same']:.2f}x; "
          f"a first render, its cache folder empty, {got['render_first']:.3f} s = "
          f"{got['render_first'] / got['floor']:.2f}x)")
    kib = [s / 1024 for s in sizes]
    ok &= verdict("HTML size", f"median {median(kib):.1f} KiB, max {max(kib):.1f} KiB",
                  median(kib) <= 70 and max(kib) <= 90, "median <= 70, max <= 90")
    return 0


if __name__ == "__main__":
    sys.exit(main())
