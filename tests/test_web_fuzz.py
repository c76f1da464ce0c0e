"""Hypothesis over every endpoint: whatever arrives, no 5xx and no state change from invalid input."""

from __future__ import annotations

import base64
import json
import string
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st

from mailer.store import schema
from tests.fixtures.sns import CERT_URL, TOPIC

TABLES = ("subscribers", "history", "list_members", "sns_messages", "feedback_events", "rate_events", "deliveries")
B64 = string.ascii_letters + string.digits + "-_"


def snapshot(store) -> tuple:
    with store.engine.connect() as conn:
        counts = tuple(conn.execute(sa.select(sa.func.count()).select_from(schema.metadata.tables[t])).scalar_one()
                       for t in TABLES)
        rows = tuple(conn.execute(sa.select(schema.subscribers.c.id, schema.subscribers.c.status)
                                  .order_by(schema.subscribers.c.id)).all())
    return counts, rows


@st.composite
def mutate(draw, token: str) -> str:
    """A near-miss of a real token: one character changed, cut or added."""
    i = draw(st.one_of(st.integers(0, len(token) - 1), st.just(len(token) - 1)))
    how = draw(st.sampled_from(["flip", "cut", "add", "append"]))
    if how == "append":
        return token + draw(st.text(".=!" + B64, min_size=1, max_size=3))
    if how == "cut":
        return token[:i]
    ch = draw(st.sampled_from(B64 + ".=!"))
    if how == "add":
        return token[:i] + ch + token[i:]
    return token[:i] + (ch if ch != token[i] else ("A" if ch != "A" else "B")) + token[i + 1:]


tokens = st.one_of(
    st.text(min_size=1, max_size=120),
    st.text(B64 + ".", min_size=1, max_size=90),
    st.builds(lambda a, b: f"{base64.urlsafe_b64encode(a).decode().rstrip('=')}.{base64.urlsafe_b64encode(b).decode().rstrip('=')}",
              st.binary(min_size=26, max_size=26), st.binary(min_size=16, max_size=16)),
)
sns_docs = st.fixed_dictionaries(
    {"Type": st.sampled_from(["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation", "x"])},
    optional={
        "MessageId": st.text(max_size=40), "TopicArn": st.sampled_from([TOPIC, "arn:aws:sns:x", ""]),
        "Message": st.one_of(st.text(max_size=200), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
        "Timestamp": st.text(max_size=30), "SignatureVersion": st.sampled_from(["1", "2", "3", ""]),
        "Signature": st.one_of(st.text(max_size=50), st.binary(min_size=256, max_size=256).map(
            lambda b: base64.b64encode(b).decode())),
        "SigningCertURL": st.sampled_from([CERT_URL, "https://evil.example.com/a.pem", "file:///etc/passwd", ""]),
        "SubscribeURL": st.sampled_from(["https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
                                         "http://127.0.0.1:1/"]),
    },
)
webhook_bodies = st.one_of(st.binary(max_size=300), sns_docs.map(lambda d: json.dumps(d).encode()),
                           st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                                        max_leaves=10).map(lambda v: json.dumps(v).encode()))
# Never an address: no "@" at all.
not_addresses = st.text(st.characters(blacklist_characters="@", blacklist_categories=("Cs",)), max_size=60)
content_types = st.sampled_from([None, "application/x-www-form-urlencoded", "multipart/form-data",
                                 "multipart/form-data; boundary=xyz", "text/plain", "application/json", "\x7f"])


@st.composite
def requests_(draw, real_unsub: str, real_confirm: str):
    kind = draw(st.sampled_from(["unsub", "resub", "confirm", "webhook", "subscribe", "other"]))
    token = draw(st.one_of(tokens, mutate(real_unsub), mutate(real_confirm)))
    path_token = quote(token, safe="")
    ctype = draw(content_types)
    body = draw(st.one_of(st.binary(max_size=200), st.just(b"List-Unsubscribe=One-Click")))
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]))
    if kind == "unsub":
        return method, f"/unsubscribe/{path_token}", ctype, body
    if kind == "resub":
        return "POST", f"/unsubscribe/{path_token}/resubscribe", ctype, body
    if kind == "confirm":
        return method, f"/confirm/{path_token}", ctype, body
    if kind == "webhook":
        return "POST", "/webhooks/ses", draw(st.sampled_from(["text/plain; charset=UTF-8", None])), draw(webhook_bodies)
    if kind == "subscribe":
        fields = {"email": draw(not_addresses)}
        if draw(st.booleans()):
            fields = {"email": draw(st.emails()), "website": draw(st.text(min_size=1, max_size=10))}  # honeypot
        enc = draw(st.sampled_from(["form", "multipart", "raw"]))
        return "POST", "/subscribe", enc, fields if enc != "raw" else draw(st.binary(max_size=200))
    return method, draw(st.sampled_from(["/", "/healthz", "/subscribe", "/unsubscribe", "/unsubscribe/",
                                         "/confirm", "/webhooks/ses", "/%ff", "/x" * 30])), ctype, body


def send(http, method, path, ctype, body):
    if ctype == "form":
        return http.request(method, path, data=body)
    if ctype == "multipart":
        return http.request(method, path, data=body, files={"f": ("f.txt", b"x")})
    headers = {"content-type": ctype} if ctype else {}
    return http.request(method, path, content=body if method not in ("GET", "HEAD") else None, headers=headers)


@pytest.mark.slow
def test_no_5xx_and_no_state_change(live):
    live.add("member@example.com")
    sub, real_unsub = live.add("left@example.com")
    live.store.set_status(sub.id, "unsubscribed", reason="cli")
    real_confirm = live.services.signer.confirm_token(sub.id, live.store.list_id("main"))
    before = snapshot(live.store)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data):
        method, path, ctype, body = data.draw(requests_(real_unsub, real_confirm))
        r = send(live.http, method, path, ctype, body)
        assert r.status_code < 500, (method, path, ctype, body, r.status_code, r.text[:300])
        assert "Traceback" not in r.text
        assert snapshot(live.store) == before, (method, path, ctype, body)

    check()
