"""Settings: file + environment, one-line errors naming the setting."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from mailer.config import DEV_SECRET, as_toml, iter_settings, load_settings, mask, secret_values
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
    # nan passes `< 0` and `> 1`: a nan guard limit would never pause a send.
    ("[guard]\nmax_bounce_rate = nan\n", {}, r"guard\.max_bounce_rate .*nan is not a finite number"),
    ("", {"TWIR_MAIL_SES_RATE": "inf"}, r"ses\.rate .*inf is not a finite number"),
    ("", {"TWIR_MAIL_WEB_PORT": "99999"}, r"web\.port .*TCP port"),
    ("[smtp]\nport = 0\n", {}, r"smtp\.port .*TCP port"),
    ("", {"TWIR_MAIL_SMTP_HOST": " ", "TWIR_MAIL_TRANSPORT_KIND": "smtp"}, r"smtp\.host .*is empty"),
])
def test_bad_settings_are_one_line_errors_naming_the_setting(workdir, text, env, pattern):
    path = write(workdir / "twir-mail.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


def test_an_empty_smtp_host_matters_only_to_the_smtp_transport(workdir):
    # An SES or outbox config with `[smtp] host = ""` loaded before the SMTP check came in.
    for kind in ("ses", "outbox"):
        path = write(workdir / "twir-mail.toml", f'[transport]\nkind = "{kind}"\n[smtp]\nhost = ""\n')
        assert load_settings(path, env={}).transport.kind == kind


def test_a_folder_named_like_the_config_is_an_error(workdir):
    # It was skipped: the built-in defaults, with a new twir-mail.db beside it.
    (workdir / "twir-mail.toml").mkdir()
    with pytest.raises(ConfigError, match=r"twir-mail\.toml: is a directory, not a settings file"):
        load_settings(env={})


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


def test_config_that_is_not_utf8_is_one_line_error_with_its_line(run_cli, workdir):
    (workdir / "twir-mail.toml").write_bytes(b'[newsletter]\nname = "Caf\xe9"\n')
    r = run_cli("config")
    assert r.code == 2 and "Traceback" not in r.err and "unexpected" not in r.err, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("twir-mail.toml:2: invalid TOML: not UTF-8 text (byte 0xe9)"), r.err


PASSWORD = "hunter2-Pa55"


def test_config_prints_every_setting_as_toml_with_its_origin(run_cli, workdir):
    write(workdir / "twir-mail.toml", '[ses]\nregion = "eu-west-1"\n[newsletter]\nname = "TWIR \\"weekly\\""\n')
    r = run_cli("config", env={"TWIR_MAIL_SEND_WORKERS": "3", "TWIR_MAIL_SMTP_PASSWORD": PASSWORD,
                               "TWIR_MAIL_DATABASE_URL": f"postgresql://twir:{PASSWORD}@db.example/twir"})
    assert r.code == 0, r.err
    shown = tomllib.loads(r.out)  # valid TOML as a whole
    settings = load_settings(workdir / "twir-mail.toml", env={"TWIR_MAIL_SEND_WORKERS": "3"})
    for section, key, f in iter_settings():
        if (section, key) != ("database", "url"):
            assert shown[section][key] == getattr(getattr(settings, section), f.name), f"{section}.{key}"
    lines, section = {}, None
    for line in r.out.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif " = " in line:
            lines[f"{section}.{line.split(' = ')[0]}"] = line
    assert len(lines) == len(list(iter_settings()))
    assert lines["ses.region"].endswith("# file") and lines["newsletter.name"].endswith("# file")
    assert lines["send.workers"].endswith("# environment TWIR_MAIL_SEND_WORKERS")
    assert lines["web.port"].endswith("# default") and lines["sponsor.name"].endswith("# default")
    assert shown["database"]["url"] == "postgresql://twir:***@db.example/twir"
    assert PASSWORD not in r.out and "TWIR_MAIL_SMTP_PASSWORD: set" in r.out


@pytest.mark.parametrize("url", [
    f"postgresql://twir:{PASSWORD}@db.example:5432/twir",
    f"postgresql://twir:{PASSWORD}@db.example:port/twir",        # malformed port
    f"postgresql://twir:{PASSWORD}@with@at@db.example/twir",     # unescaped @ in the password
    f"postgresql://twir:{PASSWORD}/slash@db.example/twir",       # unescaped / in the password
    f"postgresql://db.example/twir?user=twir&password={PASSWORD}",
    f"mysql://twir:{PASSWORD}@db.example/twir",                  # unsupported backend
])
def test_mask_hides_every_password_spelling(url):
    from mailer.config import mask

    masked = mask(f"error: bad {url!r}")
    assert PASSWORD not in masked and "***" in masked and "db.example" in masked


def test_config_with_a_long_value_is_not_quadratic(run_cli, workdir):
    # mask() tried its URL pattern at every letter of a run: 100 KB of letters took 30 s, 200 KB 2 min.
    write(workdir / "twir-mail.toml", f'[newsletter]\nname = "{"x" * 200_000}"\n')
    r = run_cli("config", timeout=30)
    assert r.code == 0 and "x" * 200_000 in r.out, r.err


def test_mask_is_linear_where_a_url_has_no_at_sign_after_it():
    """Each 'a://' scanned to the end of the word for an '@' that never came: 40 KB of 'a://:' took
    6 s (quadratic). The alarm is only a backstop: the quadratic form needs minutes for these."""
    import signal

    from mailer.config import mask

    def too_slow(*_):
        raise TimeoutError("mask is not linear")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        for text in ("a://:" * 100_000, "a://x:b" * 100_000, "a://:@" * 100_000 + "a://:" * 100_000):
            assert mask(text).startswith(text[:5])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert mask("a://u:p@h " * 3) == "a://u:***@h " * 3  # one word at a time, as before


def test_environment_secrets_are_masked_in_quoted_values():
    from mailer.config import mask

    assert mask(f"x-{PASSWORD}-y", (PASSWORD,)) == "x-***-y"


@pytest.mark.parametrize("url", [f"postgresql://twir:{PASSWORD}@db.example:port/twir",
                                 f"mysql://twir:{PASSWORD}@db.example/twir"])
def test_bad_database_url_error_does_not_quote_the_password(run_cli, url):
    r = run_cli("subscribers", "count", env={"TWIR_MAIL_DATABASE_URL": url})
    assert r.code != 0 and r.err.startswith("error: ") and "database.url" in r.err
    assert PASSWORD not in r.err + r.out


def test_bad_url_setting_error_masks_its_credentials(workdir):
    path = write(workdir / "twir-mail.toml", f'[ses]\nendpoint_url = "ftp://key:{PASSWORD}@ses.example"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "ses.endpoint_url" in str(info.value) and PASSWORD not in str(info.value)


def test_secrets_never_appear_in_the_settings_repr():
    # A repr reaches logs, tracebacks with locals and debuggers: only the masked `config` view may show them.
    secrets = {"TWIR_MAIL_SECRET_KEY": "s3cret-key-value-0123456789", "TWIR_MAIL_OLD_SECRET_KEYS": "old-key-0123456789abc",
               "TWIR_MAIL_ADDRESS_KEY": "address-key-0123456789", "TWIR_MAIL_SMTP_PASSWORD": "smtp-pass-word",
               "TWIR_MAIL_WEBHOOK_PASSWORD": "hook-pass-word"}
    settings = load_settings(env=secrets)
    assert settings.secret_key == secrets["TWIR_MAIL_SECRET_KEY"]
    shown = repr(settings)
    assert "newsletter=Newsletter(" in shown
    assert not [name for name, value in secrets.items() if value in shown]


def test_database_password_never_appears_in_a_repr():
    settings = load_settings(env={"TWIR_MAIL_DATABASE_URL": f"postgresql://twir:{PASSWORD}@db.example/twir",
                                  "TWIR_MAIL_FEEDBACK_QUEUE_URL": f"https://sqs.example/1/q?token={PASSWORD}"})
    assert settings.database.url.endswith(f":{PASSWORD}@db.example/twir")  # the value itself is intact
    for shown in (repr(settings), repr(settings.database), repr(settings.feedback)):
        assert PASSWORD not in shown and "***" in shown, shown


@pytest.mark.parametrize("url", ["https://this-week-in-rust.org:99999/", "https://:443/", "https://user@/x",
                                 "http://example.org:0/"])
def test_a_url_setting_without_a_usable_host_or_port_is_one_error(url):
    # The same rule as the AWS endpoint of the Lambda's SSM read (aws/jsoncall.py).
    with pytest.raises(ConfigError, match=r"newsletter\.site_url.*not an http\(s\) URL"):
        load_settings(env={"TWIR_MAIL_NEWSLETTER_SITE_URL": url})


def test_as_toml_says_which_secrets_are_set_without_showing_them():
    # An operator rotating keys must see that the old keys and the address key are configured.
    secrets = {"TWIR_MAIL_SECRET_KEY": "s3cret-key-value-0123456789",
               "TWIR_MAIL_OLD_SECRET_KEYS": "old-key-0123456789abc,older-key-0123456789",
               "TWIR_MAIL_ADDRESS_KEY": "address-key-0123456789"}
    shown = as_toml(load_settings(env=secrets))
    for name in secrets:
        assert f"# {name}: set (***)" in shown
    assert "# TWIR_MAIL_SMTP_PASSWORD: not set" in shown
    assert not [v for v in ("s3cret-key", "old-key-01", "older-key", "address-key") if v in shown]
    # The fields themselves are masked wherever they are quoted, each old key on its own.
    assert mask("from old-key-0123456789abc and older-key-0123456789",
                secret_values(load_settings(env=secrets))) == "from *** and ***"
