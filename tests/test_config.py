"""Settings: file + environment, one-line errors naming the setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailer.config import DEV_SECRET, iter_settings, load_settings
from mailer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(workdir):
    s = load_settings(env={})
    assert s.config_path is None
    assert s.transport.kind == "outbox"
    assert s.database_url == f"sqlite:///{workdir / 'twir-mail.db'}"
    assert s.secret_key == DEV_SECRET and not s.has_real_secret


def test_file_in_working_directory_is_found_and_paths_are_relative_to_it(workdir):
    sub = workdir / "conf"
    sub.mkdir()
    write(sub / "twir-mail.toml", '[outbox]\ndir = "mail"\n[ses]\nrate = 14\n')
    s = load_settings(sub / "twir-mail.toml", env={})
    assert s.outbox_dir == sub / "mail"
    assert s.ses.rate == 14.0
    write(workdir / "twir-mail.toml", '[transport]\nkind = "smtp"\n')
    assert load_settings(env={}).transport.kind == "smtp"


def test_env_overrides_file_with_types(workdir):
    write(workdir / "twir-mail.toml", '[ses]\nregion = "eu-west-1"\n')
    s = load_settings(env={
        "TWIR_MAIL_SES_REGION": "us-west-2",
        "TWIR_MAIL_SES_ENDPOINT_URL": "http://127.0.0.1:5000",
        "TWIR_MAIL_NEWSLETTER_FROM": "TWIR <news@example.org>",
        "TWIR_MAIL_SEND_WORKERS": "3",
        "TWIR_MAIL_RENDER_MINIFY": "false",
        "TWIR_MAIL_WEBHOOK_TOPIC_ARNS": "arn:a, arn:b",
        "TWIR_MAIL_SECRET_KEY": "x" * 32,
    })
    assert s.ses.region == "us-west-2" and s.ses.endpoint_url == "http://127.0.0.1:5000"
    assert s.newsletter.from_ == "TWIR <news@example.org>"
    assert s.send.workers == 3 and s.render.minify is False
    assert s.webhook.topic_arns == ["arn:a", "arn:b"]
    assert s.has_real_secret


def test_config_from_env_variable(workdir):
    path = write(workdir / "other.toml", '[web]\nbase_url = "https://twir.example.org"\n')
    assert load_settings(env={"TWIR_MAIL_CONFIG": str(path)}).web.base_url == "https://twir.example.org"


@pytest.mark.parametrize("text, env, pattern", [
    ("[ses]\nregoin = 'x'\n", {}, r"unknown setting ses\.regoin"),
    ("[sess]\n", {}, r"unknown section \[sess\]"),
    ("[ses]\nrate = 'fast'\n", {}, r"invalid value for ses\.rate: expected float"),
    ("[send]\nworkers = true\n", {}, r"send\.workers: expected int"),
    ("[transport]\nkind = 'pigeon'\n", {}, r"transport\.kind .*not one of outbox, smtp, ses"),
    ("[smtp]\npassword = 'hunter2'\n", {}, r"smtp\.password is a secret"),
    ("secret_key = 'x'\n", {}, r"secret_key is a secret"),
    ("[web]\nbase_url = 'ftp://x'\n", {}, r"web\.base_url .*not an http\(s\) URL"),
    # The old default, a site-relative path: a broken image in every email.
    ("[newsletter]\nlogo_url = '/images/twir-logo.png'\n", {}, r"newsletter\.logo_url .*not an http\(s\) URL"),
    ("", {"TWIR_MAIL_SPONSOR_URL": "https://example.com/a b"}, r"sponsor\.url .*without spaces"),
    ("[newsletter]\narchive_url = 'archives.html'\n", {}, r"newsletter\.archive_url .*not an http\(s\) URL"),
    ("[newsletter]\nunsubscribe_mailto = 'mailto:u@example.org'\n", {}, r"unsubscribe_mailto .*bare ASCII address"),
    ("", {"TWIR_MAIL_NEWSLETTER_FEEDBACK_SENDER": "twir:eu"}, r"feedback_sender .*field of Feedback-ID"),
    ("[newsletter]\nfrom = 'nobody'\n", {}, r"newsletter\.from"),
    ("[newsletter]\nsubject = 'TWIR {issue}'\n", {}, r"newsletter\.subject.*unknown placeholder"),
    ("[ses\n", {}, r"invalid TOML"),
    ("", {"TWIR_MAIL_SES_RATE": "soon"}, r"TWIR_MAIL_SES_RATE: expected float"),
    ("", {"TWIR_MAIL_SES_REGOIN": "x"}, r"unknown setting in environment: TWIR_MAIL_SES_REGOIN"),
])
def test_bad_settings_are_one_line_errors_naming_the_setting(workdir, text, env, pattern):
    path = write(workdir / "twir-mail.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


def test_missing_explicit_config_is_an_error(workdir):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(workdir / "nope.toml", env={})


def test_example_config_documents_every_setting_and_loads(clean_env):
    example = ROOT / "examples" / "twir-mail.toml"
    text = example.read_text(encoding="utf-8")
    for section, key, _ in iter_settings():
        assert re.search(rf"^\[{section}\]", text, re.M), section
        assert re.search(rf"^#?\s*{key} = ", text, re.M), f"{section}.{key} not documented"
    load_settings(example, env={})


def test_cli_prints_one_line_error_and_exits_nonzero(run_cli, workdir):
    write(workdir / "twir-mail.toml", "[ses]\nrate = 'fast'\n")
    result = run_cli("config")
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
