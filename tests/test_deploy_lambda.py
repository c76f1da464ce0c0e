"""The Lambda entry point of deploy/aws/template.yaml, invoked in-process with real event JSON.

Configured exactly as the template configures the function: plain settings in
TWIR_MAIL_* variables, the secret key and database URL only as SSM parameter
names (SecureStrings in moto), the SNS signing certificate fetched over HTTPS.
"""

from __future__ import annotations

import base64
import copy
import http.server
import json
import os
import re
import ssl
import sys
import threading
from pathlib import Path

import pytest

from mailer.models import Status
from mailer.tokens import Signer
from tests.fixtures.smtp import make_cert
from tests.fixtures.sns import TOPIC

DATA = Path(__file__).parent / "data"
TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "aws" / "template.yaml"
SECRET = "lambda-test-secret-key-0123456789"
API_HOST = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"


class LambdaContext:
    """The attributes of the context object Lambda passes to a Python handler."""

    function_name = "twir-mail-web"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:twir-mail-web"
    memory_limit_in_mb = 512
    aws_request_id = "5a9c1e7e-0a3f-4a1b-9d55-6f1d2c3b4a59"
    log_group_name = "/aws/lambda/twir-mail-web"
    log_stream_name = "2026/11/25/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 20000


@pytest.fixture
def cert_origin(tmp_path, sns_signer, monkeypatch):
    """An HTTPS server on loopback serving the test SNS certificate; trusted via SSL_CERT_FILE."""
    cert, key = make_cert(tmp_path)
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-pem-file")
            self.end_headers()
            self.wfile.write(sns_signer.pem)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    yield f"https://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def template_environment() -> dict[str, str]:
    """The function's Environment.Variables in deploy/aws/template.yaml, resolved as a stack would
    with the parameter defaults (Domain, CodeBucket, CodeKey have none and are not used there)."""
    from cfnlint.decode import decode

    tpl, matches = decode(str(TEMPLATE))
    assert not matches, matches
    params = {name: p.get("Default") for name, p in tpl["Parameters"].items()}
    refs = {**params, "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
            "FeedbackTopic": TOPIC, "ConfigurationSet": params["ConfigurationSetName"]}
    conditions = {"HasCustomDomain": bool(params["CustomDomainName"])}

    def resolve(value):
        if isinstance(value, str):
            return value
        [(fn, arg)] = value.items()
        if fn == "Ref":
            return refs[arg]
        if fn == "Fn::GetAtt":
            assert arg in (["HttpApi", "ApiEndpoint"], "HttpApi.ApiEndpoint"), arg
            return f"https://{API_HOST}"
        if fn == "Fn::If":
            return resolve(arg[1] if conditions[arg[0]] else arg[2])
        if fn == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: f"https://{API_HOST}" if m[1] == "HttpApi.ApiEndpoint"
                          else refs[m[1]], arg)
        raise AssertionError(f"unresolved {fn} in the function's environment")

    [fn] = [r for r in tpl["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    return {k: resolve(v) for k, v in fn["Properties"]["Environment"]["Variables"].items()}


@pytest.fixture
def handler(moto, store, db_settings, cert_origin, monkeypatch):
    """``mailer.lambda_entry.handler`` after a cold start against moto's SSM, with the template's environment."""
    from mailer.web import aws_lambda

    env = template_environment()
    ssm = moto.client("ssm")
    ssm.put_parameter(Name=env["SSM_TWIR_MAIL_SECRET_KEY"], Value=SECRET, Type="SecureString")
    ssm.put_parameter(Name=env["SSM_TWIR_MAIL_DATABASE_URL"], Value=db_settings.database_url, Type="SecureString")
    for name in ("TWIR_MAIL_SECRET_KEY", "TWIR_MAIL_DATABASE_URL"):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)  # whatever the cold start sets is removed after the test
    for name in [n for n in os.environ if n.startswith("TWIR_MAIL_")]:
        monkeypatch.delenv(name)
    # Only two things differ from AWS: where SSM is, and where the SNS signing certificate is served.
    for name, value in {**env, "AWS_ENDPOINT_URL_SSM": moto.url,
                        "TWIR_MAIL_WEBHOOK_TEST_CERT_ORIGIN": cert_origin[0]}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aws_lambda, "_handler", None)
    monkeypatch.delitem(sys.modules, "mailer.lambda_entry", raising=False)
    import mailer.lambda_entry as entry  # the cold start

    yield entry.handler
    if aws_lambda._handler is not None:
        aws_lambda._handler.app.state.services.close()
    sys.modules.pop("mailer.lambda_entry", None)


def event(name: str, *, method: str, path: str, body: bytes | None = None, base64_body: bool = False,
          headers: dict | None = None) -> dict:
    ev = copy.deepcopy(json.loads((DATA / "lambda" / name).read_text()))
    ev["rawPath"] = ev["requestContext"]["http"]["path"] = path
    ev["requestContext"]["http"]["method"] = method
    ev["headers"].update(headers or {})
    if body is None:
        ev.pop("body", None)
        ev["isBase64Encoded"] = False
    else:
        ev["headers"]["content-length"] = str(len(body))
        ev["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
        ev["isBase64Encoded"] = base64_body
    return ev


def subscriber(store, email="reader@example.com"):
    sub = store.add(email)
    return sub, Signer(SECRET).unsubscribe_token(sub.id, store.list_id("main"))


@pytest.mark.parametrize("name", ["function-url.json", "http-api-v2.json"])
def test_get_unsubscribe_shows_page_and_changes_nothing(handler, store, name):
    sub, token = subscriber(store)
    res = handler(event(name, method="GET", path=f"/unsubscribe/{token}"), LambdaContext())
    assert res["statusCode"] == 200, res
    html = base64.b64decode(res["body"]).decode() if res.get("isBase64Encoded") else res["body"]
    assert f'action="/unsubscribe/{token}"' in html
    assert store.get_by_id(sub.id).status is Status.SUBSCRIBED


@pytest.mark.parametrize("name,base64_body", [("function-url.json", True), ("http-api-v2.json", False)])
def test_one_click_post_unsubscribes(handler, store, name, base64_body):
    sub, token = subscriber(store)
    ev = event(name, method="POST", path=f"/unsubscribe/{token}", body=b"List-Unsubscribe=One-Click",
               base64_body=base64_body, headers={"content-type": "application/x-www-form-urlencoded"})
    res = handler(ev, LambdaContext())
    assert res["statusCode"] == 200, res
    assert store.get_by_id(sub.id).status is Status.UNSUBSCRIBED
    assert store.history(sub.id)[-1].reason == "unsubscribe-link"


def test_forged_token_is_refused(handler, store):
    sub, token = subscriber(store)
    forged = Signer("some-other-secret-key-0123456789").unsubscribe_token(sub.id, store.list_id("main"))
    assert forged != token
    res = handler(event("function-url.json", method="POST", path=f"/unsubscribe/{forged}",
                        body=b"List-Unsubscribe=One-Click", base64_body=True), LambdaContext())
    assert res["statusCode"] == 400
    assert store.get_by_id(sub.id).status is Status.SUBSCRIBED


def sns_event(doc: dict) -> dict:
    return event("http-api-v2.json", method="POST", path="/webhooks/ses", body=json.dumps(doc).encode(), headers={
        "content-type": "text/plain; charset=UTF-8", "user-agent": "Amazon Simple Notification Service Agent",
        "x-amz-sns-message-type": doc["Type"], "x-amz-sns-message-id": doc["MessageId"],
        "x-amz-sns-topic-arn": doc["TopicArn"]})


def test_signed_sns_bounce_suppresses(handler, store, sns_signer, cert_origin):
    gone, _ = subscriber(store, "gone@example.com")
    happy, _ = subscriber(store, "happy@example.com")
    message = json.loads((DATA / "ses" / "bounce-identity.json").read_text())
    res = handler(sns_event(sns_signer.notification(message)), LambdaContext())
    assert res["statusCode"] == 200, res
    assert store.get_by_id(gone.id).status is Status.BOUNCED
    assert store.get_by_id(happy.id).status is Status.SUBSCRIBED
    assert cert_origin[1] and cert_origin[1][0].endswith(".pem")  # fetched over HTTPS


def test_tampered_sns_notification_is_refused(handler, store, sns_signer):
    gone, _ = subscriber(store, "gone@example.com")
    doc = sns_signer.notification(json.loads((DATA / "ses" / "bounce-identity.json").read_text()))
    doc["Message"] = doc["Message"].replace("Permanent", "Transient")
    res = handler(sns_event(doc), LambdaContext())
    assert res["statusCode"] == 403
    assert store.get_by_id(gone.id).status is Status.SUBSCRIBED


def test_subscription_confirmation_is_confirmed_from_lambda(handler, sns_signer, cert_origin, moto, monkeypatch):
    # The stack's HTTPS subscription relies on the function confirming it: through the SNS API
    # (the role may sns:ConfirmSubscription), never by GETting SubscribeURL (issue 11).
    origin, hits = cert_origin
    moto.client("sns").create_topic(Name=TOPIC.rsplit(":", 1)[1])
    monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", moto.url)
    subscribe_url = f"{origin}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37"
    res = handler(sns_event(sns_signer.confirmation(subscribe_url)), LambdaContext())
    assert res["statusCode"] == 200, res
    assert not any(h.startswith("/?Action=ConfirmSubscription") for h in hits), hits
