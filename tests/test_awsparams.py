"""Secrets from SSM Parameter Store (moto) into the environment, as at a Lambda cold start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.aws.client import AwsError
from mailer.aws.params import direct_target, load_parameters
from tests.fixtures.core import free_port

ROOT = Path(__file__).resolve().parents[1]


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



# --- the direct path: signed with aws/sigv4.py, sent with the standard library --------------

SECRET_KEY, TOKEN = "secret-access-key-never-shown", "session-token-never-shown"


@pytest.fixture
def aws_env(moto, monkeypatch, tmp_path):
    """Lambda's AWS variables (credentials with a session token, a region); no config file."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)  # moto does not check them by default
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))  # a developer's ~/.aws/config aside
    return monkeypatch


@pytest.fixture
def direct(ssm, moto, aws_env):
    """The moto server as the SSM endpoint, named by the standard variable only (no client passed)."""
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", moto.url)
    return ssm


def one_line_error(env: dict[str, str]) -> str:
    with pytest.raises(AwsError) as info:
        load_parameters(env)
    text = str(info.value)
    assert "\n" not in text and SECRET_KEY not in text and TOKEN not in text
    return text


def test_direct_path_reads_from_moto_in_batches_of_ten(direct):
    names = [f"/twir-mail/many/{i:02d}" for i in range(12)]  # moto refuses more than 10 per call, as AWS
    for i, name in enumerate(names):
        direct.put_parameter(Name=name, Value=f"value-{i}", Type="SecureString")
    env = {f"SSM_TWIR_MAIL_X{i:02d}": name for i, name in enumerate(names)}
    env["SSM_TWIR_MAIL_SECRET_KEY"] = "/twir-mail/secret-key"
    assert load_parameters(env) == sorted([f"TWIR_MAIL_X{i:02d}" for i in range(12)] + ["TWIR_MAIL_SECRET_KEY"])
    assert env["TWIR_MAIL_X11"] == "value-11" and env["TWIR_MAIL_SECRET_KEY"] == "s3cret-from-ssm-0123456789"


def test_direct_path_names_a_missing_parameter_and_sets_nothing(direct):
    env = {"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key", "SSM_TWIR_MAIL_DATABASE_URL": "/twir-mail/nope"}
    assert one_line_error(env) == "SSM parameters not found (or not readable): /twir-mail/nope"
    assert "TWIR_MAIL_SECRET_KEY" not in env


def test_unreachable_endpoint_is_one_line_with_the_url_masked(aws_env):
    port = free_port()  # nothing listens: connection refused on each of the three attempts
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", f"http://proxy:pa55word@127.0.0.1:{port}")
    assert one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key"}) == (
        f"SSM parameters /twir-mail/secret-key: cannot reach the AWS endpoint http://proxy:***@127.0.0.1:{port} "
        "(check AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION and the network)")  # what chose it


def test_a_host_name_that_cannot_be_encoded_is_one_line(aws_env):
    # "ssm..amazonaws.com" passes the URL check, then the IDNA codec refuses the empty label
    # (UnicodeError, a ValueError): it ended the cold start with a traceback.
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", "https://ssm..amazonaws.com")
    assert "cannot reach the AWS endpoint https://ssm..amazonaws.com" in one_line_error(
        {"SSM_TWIR_MAIL_SECRET_KEY": "/a"})


def test_the_query_of_an_endpoint_url_is_sent_as_signed(scripted_aws, aws_env):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", f"{scripted_aws.url}/ssm?stage=1")
    scripted_aws.answer(200, ANSWER)
    assert load_parameters({"SSM_TWIR_MAIL_SECRET_KEY": "/a"}) == ["TWIR_MAIL_SECRET_KEY"]
    assert scripted_aws.requests[0]["path"] == "/ssm?stage=1"  # it sent "/ssm": AWS would refuse the signature


def test_a_signature_refusal_never_quotes_the_session_token(scripted_aws, aws_env):
    """AWS's SignatureDoesNotMatch quotes the canonical request it expected, session token and all."""
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", scripted_aws.url)
    other_token = "IQoJb3JpZ2luX2VjEOTHERTOKEN"  # one from a profile, not the environment
    canonical = (f"The request signature we calculated does not match the signature you provided.\n\n"
                 f"The Canonical String for this request should have been\n'POST\n/\n\nhost:ssm\n"
                 f"x-amz-security-token:{other_token}\n'\n\nThe String-to-Sign should have been\n'AWS4'")
    scripted_aws.error(403, "InvalidSignatureException", canonical)
    text = one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a"})
    assert text == ("SSM parameters /a: InvalidSignatureException: The request signature we calculated does "
                    "not match the signature you provided.")
    # The boto3 path goes through the same refusal.
    from botocore.exceptions import ClientError

    from mailer.aws.client import aws_errors

    with pytest.raises(AwsError) as info, aws_errors("SNS ConfirmSubscription"):
        raise ClientError({"Error": {"Code": "SignatureDoesNotMatch",
                                     "Message": f"bad x-amz-security-token: {other_token} or {SECRET_KEY}"}},
                          "ConfirmSubscription")
    assert str(info.value) == "SNS ConfirmSubscription: SignatureDoesNotMatch: bad x-amz-security-token: *** or ***"


@pytest.mark.parametrize("answer", [{"Parameters": [{"Name": "/a"}]}, {"Parameters": [None]},
                                    {"Parameters": [{"Value": "x"}]}, {"Parameters": "x"}])
def test_an_answer_of_an_unexpected_shape_is_one_line(scripted_aws, aws_env, answer):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", scripted_aws.url)
    scripted_aws.answer(200, answer)
    assert "unexpected shape" in one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a"})


@pytest.mark.parametrize("url", ["127.0.0.1:4566", "ftp://127.0.0.1/", "http://127.0.0.1:99999/", "https://"])
def test_an_endpoint_that_is_not_an_http_url_is_one_line(aws_env, url):
    aws_env.setenv("AWS_ENDPOINT_URL", url)
    assert "is not an http(s):// URL" in one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a"})


ANSWER = {"Parameters": [{"Name": "/a", "Type": "SecureString", "Value": "from-the-third-try"}],
          "InvalidParameters": []}


def test_throttling_and_5xx_are_retried_three_attempts_in_all(scripted_aws, aws_env):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", scripted_aws.url)
    scripted_aws.error(400, "ThrottlingException", "Rate exceeded")
    scripted_aws.answer(500, "internal error")
    scripted_aws.answer(200, ANSWER)
    env = {"SSM_TWIR_MAIL_SECRET_KEY": "/a"}
    assert load_parameters(env) == ["TWIR_MAIL_SECRET_KEY"]
    assert env["TWIR_MAIL_SECRET_KEY"] == "from-the-third-try"
    assert len(scripted_aws.requests) == 3
    for request in scripted_aws.requests:  # what AWS expects of a JSON 1.1 call, signed each time
        headers = request["headers"]
        assert headers["x-amz-target"] == "AmazonSSM.GetParameters"
        assert headers["content-type"] == "application/x-amz-json-1.1"
        assert headers["x-amz-security-token"] == TOKEN
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;" \
               "x-amz-target, Signature=" in headers["authorization"]
        assert json.loads(request["body"]) == {"Names": ["/a"], "WithDecryption": True}


def test_throttling_on_every_attempt_gives_up_after_three(scripted_aws, aws_env):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", scripted_aws.url)
    for status in (429, 400, 400):
        scripted_aws.error(status, "ThrottlingException", "Rate exceeded")
    assert one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a", "SSM_TWIR_MAIL_B": "/b"}) == (
        "SSM parameters /a, /b: ThrottlingException: Rate exceeded")
    assert len(scripted_aws.requests) == 3


def test_a_refusal_is_not_retried_and_never_shows_the_secrets(scripted_aws, aws_env):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", scripted_aws.url)
    scripted_aws.error(400, "AccessDeniedException", f"not allowed\n(token {TOKEN}, key {SECRET_KEY})")
    assert one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a", "SSM_TWIR_MAIL_B": "/b"}) == (
        "SSM parameters /a, /b: AccessDeniedException: not allowed (token ***, key ***)")
    assert len(scripted_aws.requests) == 1


def test_garbage_answers_are_one_line_errors(scripted_aws, aws_env):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", scripted_aws.url)
    for _ in range(3):
        scripted_aws.answer(502, "<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"})
    assert one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a"}) == "SSM parameters /a: 502: Bad Gateway"
    scripted_aws.answer(200, "[1, 2]")
    assert one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a"}) == (
        "SSM parameters /a: the AWS endpoint answered 200 with a body that is not a JSON object")


LAMBDA = {"AWS_ACCESS_KEY_ID": "ASIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
          "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_CONFIG_FILE": "/nonexistent"}


def test_direct_target_is_lambdas_standard_endpoint_or_the_configured_one():
    target = direct_target(LAMBDA)
    assert target and target.url == "https://ssm.eu-west-1.amazonaws.com" and target.token == "t"
    assert direct_target({**LAMBDA, "AWS_DEFAULT_REGION": "", "AWS_REGION": "ap-south-2"}).url == (
        "https://ssm.ap-south-2.amazonaws.com")
    assert direct_target({**LAMBDA, "AWS_ENDPOINT_URL": "http://a:1"}).url == "http://a:1"
    assert direct_target({**LAMBDA, "AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_SSM": "http://b:2"}).url == (
        "http://b:2")


@pytest.mark.parametrize("change", [
    {"AWS_REGION": "cn-north-1", "AWS_DEFAULT_REGION": "cn-northwest-1"}, {"AWS_DEFAULT_REGION": "us-gov-west-1"},
    {"AWS_DEFAULT_REGION": "us-iso-east-1"}, {"AWS_DEFAULT_REGION": "us-isob-east-1"},
    {"AWS_DEFAULT_REGION": "eusc-de-east-1"}, {"AWS_DEFAULT_REGION": "", "AWS_REGION": ""},
    {"AWS_USE_FIPS_ENDPOINT": "true"}, {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
    {"HTTPS_PROXY": "http://proxy:3128"}, {"AWS_ACCESS_KEY_ID": ""}, {"AWS_SECRET_ACCESS_KEY": ""},
    {"AWS_CONFIG_FILE": __file__},  # a config file exists: a profile there may change the endpoint
], ids=lambda change: ",".join(f"{k}={v}" for k, v in change.items()))
def test_everything_else_is_left_to_boto3(change):
    assert direct_target({**LAMBDA, **change}) is None


def test_moto_checking_signatures_accepts_the_right_secret_key_and_refuses_a_wrong_one(direct, moto, aws_env):
    iam = moto.client("iam")
    iam.create_user(UserName="lambda")
    iam.put_user_policy(UserName="lambda", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="lambda")["AccessKey"]
    aws_env.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    aws_env.delenv("AWS_SESSION_TOKEN")  # a user's long-term key: no token
    with moto.checking_credentials():
        aws_env.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        env = {"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key"}
        assert load_parameters(env) == ["TWIR_MAIL_SECRET_KEY"]
        wrong = key["SecretAccessKey"][:-1] + ("A" if key["SecretAccessKey"][-1] != "A" else "B")
        aws_env.setenv("AWS_SECRET_ACCESS_KEY", wrong)
        with pytest.raises(AwsError, match=r"^SSM parameters /twir-mail/secret-key: SignatureDoesNotMatch: ") as info:
            load_parameters({"SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key"})
        assert wrong not in str(info.value) and key["SecretAccessKey"] not in str(info.value)


# --- what a fresh Lambda process imports ------------------------------------------------------

COLD = r"""
import json, os, sys
import mailer.lambda_entry
print(json.dumps({"secret": os.environ.get("TWIR_MAIL_SECRET_KEY"),
                  "aws_sdk": sorted(m for m in ("boto3", "botocore") if m in sys.modules)}))
"""


def cold_start(env: dict[str, str], cwd: Path) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TWIR_MAIL_", "SSM_", "AWS_"))}
    out = subprocess.run([sys.executable, "-c", COLD], env={**clean, **env, "PYTHONPATH": str(ROOT)},
                         cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_lambda_cold_start_reads_its_secrets_without_boto3_or_botocore(direct, moto, tmp_path):
    env = {**LAMBDA, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_SSM": moto.url,
           "SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key"}
    assert cold_start(env, tmp_path) == {"secret": "s3cret-from-ssm-0123456789", "aws_sdk": []}


def test_without_environment_credentials_boto3_reads_them_from_a_profile(direct, moto, tmp_path):
    (tmp_path / "credentials").write_text("[reader]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"), "AWS_PROFILE": "reader",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_SSM": moto.url,
           "SSM_TWIR_MAIL_SECRET_KEY": "/twir-mail/secret-key"}
    assert cold_start(env, tmp_path) == {"secret": "s3cret-from-ssm-0123456789", "aws_sdk": ["boto3", "botocore"]}


def test_an_unreadable_ca_bundle_is_one_line(aws_env, tmp_path):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", "https://127.0.0.1:1/")
    aws_env.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    assert one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a"}) == (
        f"SSM parameters /a: cannot read the CA bundle {tmp_path / 'missing.pem'} (AWS_CA_BUNDLE)")


def test_a_version_selector_is_matched_and_a_name_left_out_of_the_answer_is_named(scripted_aws, aws_env):
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", scripted_aws.url)
    # AWS answers '/a:3' as Name '/a', Selector ':3' (moto leaves the Selector out); /b: in neither list
    scripted_aws.answer(200, {"Parameters": [{"Name": "/a", "Selector": ":3", "Value": "x"}]})
    assert one_line_error({"SSM_TWIR_MAIL_A": "/a:3", "SSM_TWIR_MAIL_B": "/b"}) == (
        "SSM parameters not found (or not readable): /b")
    scripted_aws.answer(200, {"Parameters": [{"Name": "/a", "Selector": ":3", "Value": "x"}]})
    env = {"SSM_TWIR_MAIL_A": "/a:3"}
    assert load_parameters(env) == ["TWIR_MAIL_A"] and env["TWIR_MAIL_A"] == "x"


def test_the_direct_target_never_shows_its_secrets():
    shown = repr(direct_target(LAMBDA)) + str(direct_target({**LAMBDA, "AWS_ENDPOINT_URL": "http://u:pw@h/"}))
    assert "ASIAEXAMPLE" in shown and "'s'" not in shown and "'t'" not in shown and "pw" not in shown


def test_a_certificate_that_does_not_verify_is_one_line_and_not_retried(aws_env, tls_server):
    # It was "cannot reach the AWS endpoint" after three attempts: no retry changes a certificate.
    aws_env.setenv("AWS_ENDPOINT_URL_SSM", f"https://127.0.0.1:{tls_server.port}")
    text = one_line_error({"SSM_TWIR_MAIL_SECRET_KEY": "/a"})
    assert text.startswith(f"SSM parameters /a: the AWS endpoint https://127.0.0.1:{tls_server.port} has a "
                           "certificate that does not verify (") and text.endswith("; AWS_CA_BUNDLE)")
