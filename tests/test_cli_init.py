"""A new editor's first commands: `init`, and no silent files without a config."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from mailer.config import iter_settings, load_settings
from mailer.store import open_store
from tests.fixtures.core import ROOT


def test_init_writes_config_creates_database_and_joins_the_preview_list(run_cli, workdir):
    r = run_cli("init", "--preview-address", "Editor@Example.org")
    assert r.code == 0, r.err
    config = workdir / "twir-mail.toml"
    text = config.read_text(encoding="utf-8")
    tomllib.loads(text)
    for section, key, f in iter_settings():  # every setting documented, with its meaning
        assert f"[{section}]" in text and (f"# {key} = " in text or f"\n{key} = " in text), f"{section}.{key}"
        assert f"# {f.metadata['doc']}" in text
    settings = load_settings(config, env={})
    assert settings.database_url == f"sqlite:///{workdir / 'twir-mail.db'}"
    with open_store(settings) as store:
        sub = store.get("editor@example.org")
        assert sub is not None and store.lists_of(sub.id) == ["preview"]
    steps = [line.split("#")[0].split() for line in r.out.split("next:")[1].strip().splitlines()]
    assert steps == [["twir-mail", "check", "ISSUE.md"], ["twir-mail", "preview", "ISSUE.md"],
                     ["twir-mail", "send", "--to", "preview", "ISSUE.md"]]
    assert r.err == ""  # no note: the config now says where things go


def test_init_asks_for_the_address_only_without_the_option(run_cli, workdir):
    r = run_cli("init", input="me@example.org\n")
    assert r.code == 0 and "preview list" in r.err, r.err
    with open_store(load_settings(workdir / "twir-mail.toml", env={})) as store:
        assert store.count("preview")["subscribed"] == 1


def test_init_refuses_to_overwrite_and_changes_nothing(run_cli, workdir):
    config = workdir / "twir-mail.toml"
    config.write_text('[ses]\nregion = "eu-west-1"\n', encoding="utf-8")
    r = run_cli("init", "--preview-address", "me@example.org")
    assert r.code == 2 and r.out == ""
    assert r.err.strip() == f"error: {config.name}: already exists; not overwritten (edit it, or remove it to start again)"
    assert config.read_text(encoding="utf-8") == '[ses]\nregion = "eu-west-1"\n'
    assert not (workdir / "twir-mail.db").exists()


def test_init_that_cannot_write_the_config_leaves_nothing(workdir):
    # A full disk mid-write (here a file size limit) left half a config, which the next `init`
    # refused to overwrite, after "unexpected OSError".
    code = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)); from mailer.cli import main; "
            "main(['init', '--preview-address', 'me@example.org'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIR_MAIL_")}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr == "error: twir-mail.toml: cannot write: File too large\n", r.stderr
    assert not (workdir / "twir-mail.toml").exists()


def test_init_with_a_bad_address_writes_nothing(run_cli, workdir):
    r = run_cli("init", "--preview-address", "not-an-address")
    assert r.code == 1 and r.err.startswith("error: invalid address 'not-an-address'"), r.err
    assert list(workdir.iterdir()) == []


def test_without_a_config_the_database_is_named_before_it_appears(run_cli, workdir):
    first = run_cli("subscribers", "add", "reader@example.org")
    assert first.code == 0, first.err
    db = workdir / "twir-mail.db"
    assert first.err.strip() == (f"note: no twir-mail.toml found (here or --config): creating the database at {db} "
                                 "(`twir-mail init` writes a config)")
    assert db.exists()
    again = run_cli("subscribers", "count")
    assert again.code == 0 and again.err == ""  # said once, when it is created
    # Nothing appears for commands that only read the issue.
    (workdir / "twir-mail.db").unlink()
    assert run_cli("config").code == 0 and not db.exists()
    # Nor silently for one that only reads the database (it used to open the store itself).
    report = run_cli("report", "--out", "r.html")
    assert report.code == 0 and report.err.strip() == first.err.strip(), report.err


def test_without_a_config_a_send_names_the_outbox_it_creates(run_cli, workdir):
    from tests.fixtures.send import ISSUE

    assert run_cli("subscribers", "add", "me@example.org", "--list", "preview").code == 0
    r = run_cli("send", str(ISSUE), "--to", "preview")
    assert r.code == 0, r.err
    assert f"creating the outbox at {workdir / 'outbox'}" in r.err
    assert len(list((workdir / "outbox").glob("*.eml"))) == 1


def test_init_elsewhere_names_the_config_in_the_next_commands(run_cli, workdir):
    r = run_cli("--config", "conf/newsletter.toml", "init", "--preview-address", "me@example.org")
    assert r.code == 2 and "conf/newsletter.toml: cannot create" in r.err  # no such folder: one line
    (workdir / "conf").mkdir()
    r = run_cli("--config", "conf/newsletter.toml", "init", "--preview-address", "me@example.org")
    assert r.code == 0, r.err
    assert "twir-mail --config conf/newsletter.toml send --to preview ISSUE.md" in r.out
    assert (workdir / "conf" / "twir-mail.db").exists()  # relative to the config, as documented
