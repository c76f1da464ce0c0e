"""Secrets from SSM Parameter Store (moto) into the environment, as at a Lambda cold start."""

from __future__ import annotations

import pytest

from mailer.aws.client import AwsError
from mailer.aws.params import load_parameters


@pytest.fixture
def ssm(moto):
    client = moto.client("ssm")
    client.put_parameter(Name="/twir-mail/secret-key", Value="s3cret-from-ssm-0123456789", Type="SecureString")
    client.put_parameter(Name="/twir-mail/database-url", Value="postgresql+psycopg://u:p@db/twir", Type="SecureString")
    return client


def test_loads_named_secure_strings(ssm):
    env = {"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key", "SSM_TWIR_MAIL_DATABASE_URL": "/twir-mail/database-url",
           "SSM_OTHER": "/twir-mail/secret-key", "PATH": "/bin"}
    assert load_parameters(env, client=ssm) == ["TWIR_MAIL_DATABASE_URL", "TWIR_MAIL_SECRET_KEY"]
    assert env["TWIR_MAIL_SECRET_KEY"] == "s3cret-from-ssm-0123456789"
    assert env["TWIR_MAIL_DATABASE_URL"] == "postgresql+psycopg://u:p@db/twir"
    assert "OTHER" not in env  # only TWIR_MAIL_* targets


def test_explicit_variable_wins_and_nothing_to_do_makes_no_call(ssm):
    env = {"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key", "TWIR_MAIL_SECRET_KEY": "local"}
    assert load_parameters(env, client=None) == []  # no client needed: no AWS call
    assert env["TWIR_MAIL_SECRET_KEY"] == "local"


def test_missing_parameter_is_named(ssm):
    env = {"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key", "SSM_TWIR_MAIL_DATABASE_URL": "/twir-mail/nope"}
    with pytest.raises(AwsError, match="/twir-mail/nope"):
        load_parameters(env, client=ssm)
    assert "TWIR_MAIL_SECRET_KEY" not in env  # all or nothing


def test_default_client_uses_the_standard_aws_variables(ssm, monkeypatch, moto):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto.url)
    env = {"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key"}
    assert load_parameters(env) == ["TWIR_MAIL_SECRET_KEY"]
