"""`twir-mail ses ...` as a user runs it: real subprocess, moto server, one-line errors."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def ses_env(moto) -> dict[str, str]:
    return {"TWIR_MAIL_SES_ENDPOINT_URL": moto.url, "TWIR_MAIL_SES_CONFIGURATION_SET": "twir-mail",
            "TWIR_MAIL_WEB_BASE_URL": "https://mail.example.org"}


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_setup_dry_run_then_setup_then_nothing_to_do(run_cli, ses_env, moto):
    dry = run_cli("ses", "setup", "--dry-run", env=ses_env)
    assert dry.code == 0, dry.err
    assert "configuration set twir-mail: would create" in dry.out
    assert "dry run: changes needed, nothing was changed" in dry.out
    assert moto.client("sns").list_topics()["Topics"] == []

    first = run_cli("ses", "setup", "--subscribe-webhook", env=ses_env)
    assert first.code == 0, first.err
    assert "configuration set twir-mail: created" in first.out
    assert "SNS topic twir-mail-ses-feedback: created (arn:aws:sns:" in first.out
    assert "HTTPS subscription https://mail.example.org/webhooks/ses: created" in first.out
    assert "done: changes made" in first.out

    second = run_cli("ses", "setup", "--subscribe-webhook", env=ses_env)
    assert second.code == 0, second.err
    assert "done: everything was already in place" in second.out
    assert "created" not in second.out and "updated" not in second.out


def test_status_prints_quota_domain_and_set(run_cli, ses_env):
    assert run_cli("ses", "setup", env=ses_env).code == 0
    res = run_cli("ses", "status", env=ses_env)
    assert res.code == 0, res.err
    assert "send quota: 200 per 24 hours, 1 per second, 0 sent in the last 24 hours" in res.out
    assert "domain this-week-in-rust.org: verification SUCCESS, DKIM NOT_STARTED (signing off)" in res.out
    assert "configuration set twir-mail: bounce, complaint, delivery, reject, deliveryDelay -> arn:aws:sns:" in res.out
    assert "warning: DKIM for this-week-in-rust.org is not set up" in res.out


def test_missing_credentials_is_one_line(run_cli, workdir, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(workdir / "none"), "AWS_CONFIG_FILE": str(workdir / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "TWIR_MAIL_SES_ENDPOINT_URL": "http://127.0.0.1:9"}
    res = run_cli("ses", "status", env=env)
    assert res.code == 1
    assert "no AWS credentials found" in one_error_line(res.err)


def test_aws_errors_mask_credentials_in_the_url_they_quote(run_cli, workdir, monkeypatch):
    # The action named in an AWS error quotes feedback.queue_url as set, user:password and all.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(workdir / "none"), "AWS_CONFIG_FILE": str(workdir / "none"),
           "AWS_EC2_METADATA_DISABLED": "true", "TWIR_MAIL_FEEDBACK_ENDPOINT_URL": "http://127.0.0.1:9",
           "TWIR_MAIL_FEEDBACK_QUEUE_URL": "https://key:hunter2-Pa55@sqs.example.org/1/q"}
    res = run_cli("feedback", "poll", "--once", env=env)
    line = one_error_line("\n".join(ln for ln in res.err.splitlines() if not ln.startswith("note: ")))
    assert res.code == 1 and "SQS queue https://key:***@sqs.example.org/1/q" in line
    assert "hunter2" not in res.err + res.out


def test_unreachable_endpoint_is_one_line(run_cli, moto):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_cli("ses", "setup", env={"TWIR_MAIL_SES_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                                       "TWIR_MAIL_SES_CONFIGURATION_SET": "twir-mail"})
    assert res.code == 1
    assert f"cannot reach the AWS endpoint http://127.0.0.1:{port}" in one_error_line(res.err)


def test_missing_configuration_set_names_the_setting(run_cli, moto):
    res = run_cli("ses", "setup", env={"TWIR_MAIL_SES_ENDPOINT_URL": moto.url})
    assert res.code == 2
    assert "ses.configuration_set is empty" in one_error_line(res.err)


def test_subscribe_needs_https_base_url(run_cli, ses_env):
    res = run_cli("ses", "setup", "--subscribe-webhook", env=dict(ses_env, TWIR_MAIL_WEB_BASE_URL="http://127.0.0.1:8000"))
    assert res.code == 2
    assert "web.base_url must be https://" in one_error_line(res.err)


def test_no_region_is_one_line(run_cli, moto, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    res = run_cli("ses", "status", env={"TWIR_MAIL_SES_REGION": "", "AWS_CONFIG_FILE": "/nonexistent"})
    assert res.code == 1
    assert "no AWS region: set ses.region" in one_error_line(res.err)


@pytest.mark.parametrize("command", [("ses", "status"), ("ses", "setup", "--dry-run")])
def test_malformed_endpoint_url_names_the_setting(run_cli, moto, command):
    res = run_cli(*command, env={"TWIR_MAIL_SES_ENDPOINT_URL": "127.0.0.1:4566",
                                 "TWIR_MAIL_SES_CONFIGURATION_SET": "twir-mail"})
    assert res.code == 2, res.err
    assert "ses.endpoint_url" in one_error_line(res.err) and "not an http(s) URL" in res.err


@pytest.mark.parametrize("setting,value", [("CONFIGURATION_SET", "twir mail"), ("SNS_TOPIC", ""),
                                           ("SNS_TOPIC", "feedback.topic")])
def test_invalid_names_are_refused_before_anything_is_created(run_cli, ses_env, moto, setting, value):
    for args in (("ses", "setup", "--dry-run"), ("ses", "setup")):
        res = run_cli(*args, env=dict(ses_env, **{f"TWIR_MAIL_SES_{setting}": value}))
        assert res.code == 2, res.out + res.err
        assert f"ses.{setting.lower()}" in one_error_line(res.err) and "is not a valid name" in res.err
    assert moto.client("ses").list_configuration_sets()["ConfigurationSets"] == []
    assert moto.client("sns").list_topics()["Topics"] == []
