"""What a fresh process imports: the unsubscribe path stays light, render skips `requests`.

Behaviour, not timing: each case runs in a fresh interpreter and inspects sys.modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_EVENT = ROOT / "tests" / "data" / "lambda" / "http-api-v2.json"
SECRET = "cold-import-secret-0123456789"

# Nothing the one-click path needs: the renderer, CSS inliner, AWS SDK, SNS crypto, and on
# SQLite the PostgreSQL dialect (a partial index's `postgresql_where` used to load it).
NOT_ON_THE_UNSUBSCRIBE_PATH = ("premailer", "cssutils", "markdown", "mjml", "pygments", "requests",
                               "boto3", "botocore", "cryptography", "mailer.issue.render",
                               "email_validator", "sqlalchemy.dialects.postgresql", "psycopg", "alembic",
                               "urllib.request")

UNSUBSCRIBE = r"""
import json, sys
import mailer.lambda_entry as entry
event = json.load(open(sys.argv[1]))
event["rawPath"] = event["requestContext"]["http"]["path"] = "/unsubscribe/" + sys.argv[2]
event["requestContext"]["http"]["method"] = "POST"
event["body"], event["isBase64Encoded"] = "List-Unsubscribe=One-Click", False
event["headers"]["content-type"] = "application/x-www-form-urlencoded"
answer = entry.handler(event, None)
print(json.dumps({"status": answer["statusCode"], "modules": sorted(sys.modules)}))
"""


def fresh_python(code: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TWIR_MAIL_", "SSM_"))}
    return subprocess.run([sys.executable, "-c", code, *args], env={**clean, **env, "PYTHONPATH": str(ROOT)},
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_one_click_in_a_fresh_lambda_imports_no_renderer_or_aws_sdk(tmp_path):
    from mailer.config import load_settings
    from mailer.models import Status
    from mailer.store import open_store
    from mailer.tokens import Signer

    env = {"TWIR_MAIL_SECRET_KEY": SECRET, "TWIR_MAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'cold.db'}"}
    with open_store(load_settings(env=env), upgrade=True) as store:  # prepared here, not in the cold process
        sub = store.add("reader@example.com")
        token = Signer(SECRET).unsubscribe_token(sub.id, store.list_id("main"))
    out = fresh_python(UNSUBSCRIBE, str(LAMBDA_EVENT), token, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    loaded = set(result["modules"])
    assert not [m for m in NOT_ON_THE_UNSUBSCRIBE_PATH if m in loaded]
    with open_store(load_settings(env=env)) as store:
        assert store.get_by_id(sub.id).status is Status.UNSUBSCRIBED


RENDER = r"""
import json, sys
from pathlib import Path
from mailer.config import Settings
from mailer.issue.parse import parse_issue
from mailer.issue.render import render_issue
rendered = render_issue(parse_issue(Path(sys.argv[1])), Settings(base_dir=Path.cwd()))
before = "requests" in sys.modules
import premailer.premailer as pp
get = pp.requests.get  # premailer's handle still reaches the real module when used
import requests
print(json.dumps({"styled": 'style="' in rendered.html, "requests_before": before,
                  "same": get is requests.get}))
"""


def test_render_does_not_import_requests_but_premailer_could_still_use_it(tmp_path, issue_file):
    path = issue_file("A [link](https://example.org/) and `code`.\n\n## News\n\n* item\n")
    out = fresh_python(RENDER, str(path), env={}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"styled": True, "requests_before": False, "same": True}


@pytest.mark.parametrize("already", [False, True])
def test_placeholder_leaves_an_already_imported_module_alone(already):
    code = ("import sys\n" + ("import requests\n" if already else "") +
            "from mailer.issue.inline import _premailer_class\n_premailer_class()\n"
            "import premailer.premailer as pp\nprint(type(pp.requests).__name__, 'requests' in sys.modules)")
    out = fresh_python(code, env={}, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == (["module", "True"] if already else ["_Deferred", "False"])


def test_check_builds_the_message_without_importing_the_store(tmp_path, issue_file):
    # `check` is the editor's loop: building the message as `send` would must not pull in the
    # store (SQLAlchemy alone was 170 ms of a cold `check`).
    path = issue_file("A [link](https://example.org/).\n\n## News\n\n* item\n")
    code = ("import json, sys\nfrom mailer.config import load_settings\nfrom mailer.issue.parse import parse_issue\n"
            "from mailer.sending.preflight import check_message\n"
            f"findings, rendered = check_message(parse_issue({str(path)!r}), load_settings(env={{}}))\n"
            "print(json.dumps({'rendered': rendered is not None, 'sqlalchemy': 'sqlalchemy' in sys.modules}))")
    out = fresh_python(code, env={}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"rendered": True, "sqlalchemy": False}


DEFERRED = r"""
import json, sys
from mailer.issue.content import markdown_html
from mailer.issue.inline import _premailer_class
from mailer.issue.lint import mojibake
markdown_html("```rust\nfn main() {}\n```\n")
_premailer_class()
repaired = mojibake("caf\u00c3\u00a9")
names = ("requests", "urllib.request", "importlib.metadata", "encutils", "wcwidth")
before = [m for m in names if m in sys.modules]
# Each library still reaches the real module when it does use one.
import cssutils.helper, ftfy.formatting, pymdownx.util
used = [cssutils.helper.path2url("/tmp/a b.css"), pymdownx.util.path2url("/tmp/a b"),
        ftfy.formatting.display_ljust("\u30c6", 3, ".")]
print(json.dumps({"before": before, "repaired": repaired, "used": [str(u) for u in used],
                  "after": [m for m in names if m in sys.modules]}))
"""


def test_render_and_check_defer_what_only_network_code_uses(tmp_path):
    out = fresh_python(DEFERRED, env={}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == [] and result["repaired"] == "caf\u00e9"
    assert result["used"][0] == "file:/tmp/a%20b.css" and result["used"][2] == "\u30c6."
    assert {"urllib.request", "wcwidth"} <= set(result["after"])


def test_deferred_import_stand_ins_and_loud_misses(tmp_path, monkeypatch):
    from mailer.issue.lazyimport import import_deferring

    (tmp_path / "lazy_lib.py").write_text("import lazy_dep\nfrom lazy_dep2 import helper\n"
                                          "def use():\n    return lazy_dep.VALUE, helper(2)\n")
    (tmp_path / "lazy_dep.py").write_text("VALUE = 'real'\n")
    (tmp_path / "lazy_dep2.py").write_text("def helper(x):\n    return x * 21\nCONST = 1\n")
    (tmp_path / "lazy_bad.py").write_text("from lazy_dep2 import CONST\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("lazy_lib", "lazy_dep", "lazy_dep2", "lazy_bad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    deferred = {"lazy_dep": (), "lazy_dep2": ("helper",)}
    lib = import_deferring("lazy_lib", deferred)
    assert "lazy_dep" not in sys.modules and "lazy_dep2" not in sys.modules
    assert lib.use() == ("real", 42)  # each loads on first use
    assert "lazy_dep" in sys.modules and "lazy_dep2" in sys.modules
    monkeypatch.delitem(sys.modules, "lazy_dep2")
    with pytest.raises(ImportError, match="CONST"):  # only the listed functions get stand-ins
        import_deferring("lazy_bad", deferred)


def test_cli_command_map_matches_what_each_module_registers():
    import importlib

    import click

    from mailer.cli import COMMANDS

    registered = {}
    for module in set(COMMANDS.values()):
        group = click.Group()
        importlib.import_module(f"mailer.cli.{module}").register(group)
        registered.update(dict.fromkeys(group.commands, module))
    assert registered == COMMANDS


def test_a_command_loads_only_its_own_cli_module(tmp_path):
    code = ("import json, sys\nfrom mailer.cli import main\ntry:\n    main(['render', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mailer.cli.'))))")
    out = fresh_python(code, env={}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Render issues" in out.stdout
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["mailer.cli.render"]
