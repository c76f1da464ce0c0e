"""mailer/aws/sigv4.py: AWS's published test vectors, and botocore's SigV4Auth as the oracle
for generated requests (botocore is imported here only; the signer never imports it)."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given, settings, strategies as st

from mailer.aws import sigv4

# AWS Signature Version 4 test suite: its credentials, scope and time.
SUITE = dict(region="us-east-1", service="service", access_key="AKIDEXAMPLE",
             secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", amz_date="20150830T123600Z")
SCOPE = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "


def test_get_vanilla_canonical_request_string_to_sign_and_signature():
    url = "https://example.amazonaws.com/"
    headers = sigv4.headers_to_sign({"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"})
    request = sigv4.canonical_request("GET", url, headers, b"")
    assert request == ("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert sigv4.string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", request) == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
    assert sigv4.sign("GET", url, {}, b"", **SUITE)["Authorization"] == SCOPE + (
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


def test_post_vanilla_and_query_order_vectors():
    post = sigv4.sign("POST", "https://example.amazonaws.com/", {}, b"", **SUITE)
    assert post["Authorization"].endswith("Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
    query = sigv4.sign("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", {}, b"", **SUITE)
    assert query["Authorization"].endswith("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")


def test_sign_adds_host_date_and_token_and_replaces_stale_ones():
    out = sigv4.sign("POST", "http://127.0.0.1:5000/", {"X-Amz-Date": "old", "authorization": "old"}, b"{}",
                     token="session-token", **{**SUITE, "service": "ssm"})
    assert out["Host"] == "127.0.0.1:5000" and out["X-Amz-Date"] == "20150830T123600Z"
    assert out["X-Amz-Security-Token"] == "session-token"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in out["Authorization"]
    assert "authorization" not in out and "session-token" not in out["Authorization"]


# --- botocore's signer as the oracle -------------------------------------------------------

# Names either signer treats specially (set by the signer, or botocore's Date/payload-hash rules).
SPECIAL = {"authorization", "x-amz-date", "x-amz-security-token", "date", "x-amz-content-sha256"}
header_names = st.sampled_from(["User-Agent", "connection", "TE", "X-Amzn-Trace-Id", "X-Amz-Target", "Host",
                                 "Content-Type", "content-TYPE"]) | st.from_regex(
    r"[A-Za-z0-9-]{1,16}", fullmatch=True).filter(lambda n: n.lower() not in SPECIAL)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(" \t"), max_size=30)
segment = st.sampled_from(["", ".", "..", "a", "b c", "ሴ", "%41", "x~y", "-_."]) | st.text(
    st.characters(blacklist_characters="/?#\r\n\t", blacklist_categories=("Cs", "Cc")), max_size=8)
paths = st.lists(segment, max_size=5).map(lambda parts: "/" + "/".join(parts))
pairs = st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=4)
queries = pairs.map(lambda ps: "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in ps))
hosts = st.sampled_from(["ssm.eu-west-1.amazonaws.com", "Example.AmazonAWS.com", "127.0.0.1:4566",
                         "localhost:443", "[::1]:8080", "h:80"])


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "put", "DELETE"]), scheme=st.sampled_from(["https", "http"]),
       host=hosts, path=paths, query=queries, headers=st.dictionaries(header_names, header_values, max_size=5),
       body=st.binary(max_size=64), token=st.sampled_from(["", "FwoGZXIvYXdzEJr//token+/="]),
       region=st.sampled_from(["us-east-1", "eu-central-2", "ap-southeast-4", "cn-north-1"]),
       service=st.sampled_from(["ssm", "sts", "execute-api", "service"]),
       secret=st.text(min_size=1, max_size=40))
def test_authorization_is_byte_identical_to_botocore(method, scheme, host, path, query, headers, body, token,
                                                     region, service, secret):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials("AKIDEXAMPLE", secret, token or None), service, region).add_auth(request)
    ours = sigv4.sign(method, url, headers, body, region=region, service=service, access_key="AKIDEXAMPLE",
                      secret_key=secret, token=token, amz_date=request.headers["X-Amz-Date"])
    assert ours["Authorization"] == request.headers["Authorization"]
