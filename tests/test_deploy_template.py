"""deploy/aws/template.yaml: cfn-lint clean, and wired the way the app and issue 6 need."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.aws import sesadmin
from mailer.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "aws" / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def cfn_lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CFN_LINT), "--", str(path)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def template() -> dict:
    from cfnlint.decode import decode

    tpl, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return tpl


def resources(tpl: dict, kind: str) -> list[dict]:
    return [r for r in tpl["Resources"].values() if r["Type"] == kind]


def test_cfn_lint_is_clean():
    res = cfn_lint(TEMPLATE)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cfn_lint_catches_a_broken_copy(tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("RawMessageDelivery:", "RawMessageDeliver:"))
    res = cfn_lint(broken)
    assert res.returncode != 0 and "RawMessageDeliver" in res.stdout


def test_event_destination_sends_all_feedback_to_the_topic(template):
    [dest] = resources(template, "AWS::SES::ConfigurationSetEventDestination")
    ed = dest["Properties"]["EventDestination"]
    assert set(ed["MatchingEventTypes"]) == set(sesadmin.EVENT_TYPES)
    assert ed["Enabled"] is True and ed["Name"] == sesadmin.DESTINATION_NAME
    assert ed["SnsDestination"]["TopicARN"] == {"Ref": "FeedbackTopic"}
    assert dest["Properties"]["ConfigurationSetName"] == {"Ref": "ConfigurationSet"}


def test_topic_and_https_subscription(template):
    topic = template["Resources"]["FeedbackTopic"]
    assert topic["Properties"]["SignatureVersion"] == "2"
    [sub] = resources(template, "AWS::SNS::Subscription")
    props = sub["Properties"]
    assert props["Protocol"] == "https" and props["RawMessageDelivery"] is False
    # The API's own host, never CustomDomainName: that name resolves only once its CNAME is published
    # after the stack exists, so SNS could not deliver the SubscriptionConfirmation to it.
    assert props["Endpoint"] == {"Fn::Sub": "${HttpApi.ApiEndpoint}/webhooks/ses"}
    assert template["Outputs"]["WebhookUrl"]["Value"] == props["Endpoint"]
    # Created only once the confirmation can reach the function: route, stage and invoke permission.
    needed = {name for name, r in template["Resources"].items() if r["Type"] in (
        "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Stage", "AWS::Lambda::Permission")}
    assert needed <= set(sub["DependsOn"]), needed - set(sub["DependsOn"])
    # SNS paces deliveries below the API's throttle (a throttled event would be retried, then lost).
    pace = props["DeliveryPolicy"]["throttlePolicy"]["maxReceivesPerSecond"]
    [stage] = resources(template, "AWS::ApiGatewayV2::Stage")
    assert pace < stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"]
    assert props["DeliveryPolicy"] == sesadmin.DELIVERY_POLICY  # `ses setup --subscribe-webhook` uses the same
    retry = props["DeliveryPolicy"]["healthyRetryPolicy"]
    assert retry["numRetries"] >= retry["numMinDelayRetries"] + retry["numMaxDelayRetries"] + retry["numNoDelayRetries"]
    [policy] = resources(template, "AWS::SNS::TopicPolicy")
    [stmt] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert stmt["Principal"] == {"Service": "ses.amazonaws.com"} and stmt["Action"] == "SNS:Publish"
    assert "configuration-set/${ConfigurationSetName}" in stmt["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]


def test_function_runs_the_web_handler_and_gets_secrets_only_by_name(template):
    [fn] = resources(template, "AWS::Lambda::Function")
    handler = fn["Properties"]["Handler"]
    module, _, attr = handler.rpartition(".")
    assert importlib.util.find_spec(module) is not None
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
    env = fn["Properties"]["Environment"]["Variables"]
    assert "TWIR_MAIL_SECRET_KEY" not in env and "TWIR_MAIL_DATABASE_URL" not in env
    assert "TWIR_MAIL_WEBHOOK_PASSWORD" not in env and "TWIR_MAIL_SMTP_PASSWORD" not in env
    assert env["SSM_TWIR_MAIL_SECRET_KEY"] == {"Ref": "SecretKeyParameter"}
    assert env["SSM_TWIR_MAIL_DATABASE_URL"] == {"Ref": "DatabaseUrlParameter"}
    assert env["TWIR_MAIL_WEBHOOK_TOPIC_ARNS"] == {"Ref": "FeedbackTopic"}
    # Every plain setting the template passes is one the app knows (a typo would stop it at start).
    names = {k: "https://example.org" if k.endswith("BASE_URL") else
             ("Name <a@example.org>" if k.endswith("_FROM") else ("ses" if k.endswith("KIND") else "x"))
             for k in env if k.startswith("TWIR_MAIL_")}
    load_settings(env=names)


def test_iam_is_least_privilege(template):
    [role] = resources(template, "AWS::IAM::Role")
    statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    actions = sorted(a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    assert actions == ["logs:CreateLogStream", "logs:PutLogEvents", "ses:SendEmail", "ses:SendRawEmail",
                       "sns:ConfirmSubscription", "ssm:GetParameters"]
    for s in statements:
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        assert "*" not in res and all("*" not in str(r) for r in res), s
    [perm] = resources(template, "AWS::Lambda::Permission")
    assert perm["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert "SourceArn" in perm["Properties"]


def test_parameters_for_domain_and_sender(template):
    params = template["Parameters"]
    assert {"Domain", "Sender", "SecretKeyParameter", "DatabaseUrlParameter"} <= set(params)
    assert "Default" not in params["Domain"] and params["Domain"]["AllowedPattern"]
    from email.utils import parseaddr
    assert parseaddr(params["Sender"]["Default"])[1].endswith("@this-week-in-rust.org")


def test_deploy_script_parses():
    res = subprocess.run(["bash", "-n", str(ROOT / "deploy" / "aws" / "deploy.sh")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_readme_documents_every_parameter_and_real_ses_commands(template):
    import re

    readme = (ROOT / "deploy" / "README.md").read_text()
    missing = [name for name in template["Parameters"] if f"`{name}`" not in readme]
    assert not missing, f"stack parameters not in deploy/README.md: {missing}"
    for output in ("BaseUrl", "WebhookUrl", "FeedbackTopicArn", "ConfigurationSet"):
        assert output in template["Outputs"] and f"`{output}`" in readme
    from click.testing import CliRunner

    from mailer.cli import _register, cli

    _register()
    for cmd in sorted(set(re.findall(r"twir-mail ses ([a-z-]+)", readme))):
        res = CliRunner().invoke(cli, ["ses", cmd, "--help"])
        assert res.exit_code == 0, f"`twir-mail ses {cmd}` in the README does not exist"


def test_readme_names_only_real_commands_options_and_settings(workdir):
    """Every `twir-mail ...` line, option, setting and TWIR_MAIL_* variable deploy/README.md names exists."""
    import re
    import shlex

    import click

    from mailer.cli import _register, cli
    from mailer.config import ENV_SPECIAL

    _register()
    readme = (ROOT / "deploy" / "README.md").read_text()
    blocks = [re.sub(r"\\\n\s*", " ", b) for b in re.findall(r"```sh\n(.*?)```", readme, re.S)]
    commands = re.findall(r"`([^`\n]+)`", readme) + [ln.split(" #")[0] for b in blocks for ln in b.splitlines()]
    checked = 0
    for command in commands:
        for segment in re.split(r"&&|;|\|", command):
            try:
                words = shlex.split(segment)
            except ValueError:
                continue
            while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value twir-mail ...
                words.pop(0)
            if len(words) < 2 or words[0] != "twir-mail":
                continue
            line = " ".join(words[1:])
            words = words[1:]
            cmd, path = cli, []
            while words and isinstance(cmd, click.Group) and words[0] in cmd.commands:
                path.append(words[0])
                cmd = cmd.commands[words.pop(0)]
            assert path and not isinstance(cmd, click.Group), f"`twir-mail {line}`: no such command"
            known = {o for p in cmd.params for o in getattr(p, "opts", [])}
            unknown = [w for w in words if w.startswith("--") and w.split("=")[0] not in known]
            assert not unknown, f"`twir-mail {' '.join(path)}` has no option {unknown}"
            checked += 1
    assert checked >= 10
    settings = load_settings(env={})
    for section, key in set(re.findall(r"(?<![.\w])(newsletter|database|transport|ses|send|web|webhook|smtp|outbox)\.([a-z_]+)\b(?!=)",
                                       readme)) | set(re.findall(r"\[([a-z]+)\] `?([a-z_]+)", readme)):
        assert hasattr(getattr(settings, section), key) or hasattr(getattr(settings, section), key + "_"), \
            f"deploy/README.md names {section}.{key}, which is not a setting"
    for name in set(re.findall(r"TWIR_MAIL_[A-Z_]+", readme)) - ENV_SPECIAL:
        section, _, key = name[len("TWIR_MAIL_"):].lower().partition("_")
        if section == "web" and key.startswith("base"):  # TWIR_MAIL_WEB_BASE_URL
            key = "base_url"
        assert hasattr(getattr(settings, section, None), key) or hasattr(getattr(settings, section, None), key + "_"), name
