"""What premailer derives from content.css, kept between processes (mailer.issue.inline).

Each process is fresh, with its own temp folder (so its own private cache folder):
the first run derives and saves, a later one renders from the entry without
loading cssutils, and every run gives the same email as premailer on its own.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Code blocks (Pygments' style attributes, which premailer parses with validation),
# headings, links, a table and an author's style attribute that cssutils warns about.
ISSUE = """Title: This Week in Rust 999
Number: 999
Date: 2026-01-07
Category: This Week in Rust

Hello [Rust](https://www.rust-lang.org/) and <a href="https://example.org/" style="colr: red; color: blue">odd</a>.

## Code

```rust
fn main() { println!("hi"); }
```

| a | b |
|---|---|
| 1 | 2 |
"""

RENDER = r"""
import json, sys
from mailer.config import load_settings
from mailer.issue.parse import parse_issue
from mailer.issue.render import render_issue
rendered = render_issue(parse_issue(sys.argv[1]), load_settings(env={}))
print(json.dumps({"html": rendered.html, "cssutils": "cssutils" in sys.modules}))
"""

PLAIN = r"""
import json, sys
from lxml import html as lxml_html
import premailer
from mailer.issue import inline
fragment = lxml_html.fragment_fromstring(open(sys.argv[1]).read(), create_parent="div")
premailer.Premailer(fragment, css_text=[open(sys.argv[2]).read()], disable_leftover_css=True,
                    cssutils_logging_level=50, **inline.OPTIONS).transform()
print(json.dumps(lxml_html.tostring(fragment, encoding="unicode")))
"""


def run(code: str, tmpdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(tmpdir))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=tmpdir, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def render(tmpdir: Path, issue: Path) -> dict:
    out = run(RENDER, tmpdir, str(issue))
    assert out.stderr == ""  # cssutils' warning about "colr" is not printed, loaded early or late
    return json.loads(out.stdout)


def entries(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("_jinja2-cache-*/twir-mail-css-*.json"))


@pytest.fixture
def issue(tmp_path) -> Path:
    path = tmp_path / "issue.md"
    path.write_text(ISSUE, encoding="utf-8")
    return path


def test_a_later_run_renders_from_the_entry_without_cssutils(tmp_path, issue):
    first = render(tmp_path, issue)
    assert first["cssutils"]  # nothing saved yet: derived with cssutils
    [entry] = entries(tmp_path)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(entry.parent.stat().st_mode) == 0o700
    second = render(tmp_path, issue)
    assert not second["cssutils"]
    assert second["html"] == first["html"]
    assert 'style="color:#b7410e"' in first["html"]  # content.css inlined: a link
    assert "colr" in first["html"] and "color:blue" in first["html"]  # the author's own style kept


def test_the_entry_changes_nothing_premailer_alone_would_do(tmp_path, issue):
    from lxml import html as lxml_html

    from mailer.config import load_settings
    from mailer.issue.content import markdown_html

    content = tmp_path / "content.html"
    content.write_text(markdown_html(issue.read_text(encoding="utf-8").split("\n\n", 1)[1]), encoding="utf-8")
    css = load_settings(env={}).templates_dir / "content.css"
    expected = json.loads(run(PLAIN, tmp_path, str(content), str(css)).stdout)
    code = ("import json, sys\nfrom lxml import html as lxml_html\nfrom mailer.issue.inline import inline_css\n"
            "fragment = lxml_html.fragment_fromstring(open(sys.argv[1]).read(), create_parent='div')\n"
            "assert inline_css(fragment, open(sys.argv[2]).read()) == ''\n"
            "print(json.dumps([lxml_html.tostring(fragment, encoding='unicode'), 'cssutils' in sys.modules]))")
    for loaded in (True, False):  # derived, then from the entry
        got, cssutils = json.loads(run(code, tmp_path, str(content), str(css)).stdout)
        assert (got, cssutils) == (expected, loaded)
    assert lxml_html.fromstring(expected).xpath("//pre/@style")  # the case that parses style attributes


def test_a_new_style_attribute_is_derived_and_added(tmp_path, issue):
    render(tmp_path, issue)
    issue.write_text(ISSUE + '\n<p>x <a href="https://example.org/b" style="font-weight: bold">b</a></p>\n')
    assert render(tmp_path, issue)["cssutils"]
    again = render(tmp_path, issue)
    assert not again["cssutils"] and "font-weight:bold" in again["html"].replace(": ", ":")
    [entry] = entries(tmp_path)
    assert "font-weight: bold" in json.loads(entry.read_text())["styles"]


@pytest.mark.parametrize("damage", ["not json", '{"rules": 3}', '{"rules": [[1, 2]], "leftover": ""}', ""])
def test_a_damaged_entry_is_derived_again(tmp_path, issue, damage):
    good = render(tmp_path, issue)["html"]
    [entry] = entries(tmp_path)
    entry.write_text(damage)
    again = render(tmp_path, issue)
    assert again["html"] == good and again["cssutils"]
    assert json.loads(entry.read_text())["rules"]  # written afresh


def test_an_unusable_cache_folder_costs_only_the_derivation(tmp_path, issue):
    (tmp_path / "elsewhere").mkdir()
    good = render(tmp_path / "elsewhere", issue)["html"]
    # Where the private folder would be, a file: Jinja2 finds it unsafe, and so do we.
    (tmp_path / f"_jinja2-cache-{os.getuid()}").write_text("not a folder")
    for _ in range(2):
        again = render(tmp_path, issue)
        assert again["html"] == good and again["cssutils"]
    assert entries(tmp_path) == []


def test_an_edited_stylesheet_gets_its_own_entry(tmp_path, issue):
    from mailer.issue import inline

    first = inline._entry_path("a { color: red; }")
    assert first is not None and first != inline._entry_path("a { color: blue; }")
    assert first == inline._entry_path("a { color: red; }")


def test_on_load_runs_at_first_use_or_at_once(tmp_path, monkeypatch):
    from mailer.issue.lazyimport import import_deferring

    (tmp_path / "hook_lib.py").write_text("import hook_dep\ndef use():\n    return hook_dep.VALUE\n")
    (tmp_path / "hook_dep.py").write_text("VALUE = 'real'\nSETUP = []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("hook_lib", "hook_dep"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    seen = []
    lib = import_deferring("hook_lib", {"hook_dep": ()}, on_load={"hook_dep": lambda m: seen.append(m.__name__)})
    assert seen == [] and "hook_dep" not in sys.modules
    assert lib.use() == "real" and lib.use() == "real"
    assert seen == ["hook_dep"]  # once, when it loaded
    monkeypatch.delitem(sys.modules, "hook_lib")
    import_deferring("hook_lib", {"hook_dep": ()}, on_load={"hook_dep": lambda m: seen.append("again")})
    assert seen == ["hook_dep", "again"]  # loaded already: at once
