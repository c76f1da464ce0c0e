"""Secrets from AWS SSM Parameter Store into the environment, before settings load.

The Lambda function's configuration holds only parameter *names*: for every
``SSM_TWIR_MAIL_<X>=/path/of/parameter`` variable, the decrypted value of that
SecureString becomes ``TWIR_MAIL_<X>`` (unless ``TWIR_MAIL_<X>`` is set already,
which lets a local run override it). GetParameters calls of at most 10 names each,
all or nothing; 5 s connect timeout, three attempts, one-line AwsErrors.

Two ways to make the call, with the same answers and errors:

* direct (``direct_target``): what Lambda provides, credentials in AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and a region of the standard ``aws``
  partition, is signed here (aws/sigv4.py) and POSTed with the standard library, so a
  cold start does not import boto3/botocore (350-450 ms of a ~0.5 s budget);
* boto3 (aws/client.py ``build_client``) for everything else: profiles, container or
  instance credentials, China/GovCloud/ISO regions, FIPS or dual-stack endpoints, a proxy,
  a shared config file, or a client passed in.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, MutableMapping

from mailer.aws.client import AwsError, aws_errors, build_client
from mailer.aws.jsoncall import Target, call

PREFIX = "SSM_"
TARGET_PREFIX = "TWIR_MAIL_"
BATCH = 10  # GetParameters takes at most 10 names
# Regions of the standard partition (botocore's partitions.json, partition "aws"): the only
# ones whose endpoint is https://ssm.REGION.amazonaws.com.
STANDARD_REGION = re.compile(r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+", re.ASCII)
# Settings that change which endpoint, certificates or route botocore uses: leave them to it.
BOTOCORE_ONLY = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                 "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def wanted(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Target variable -> parameter name, for the targets not already set."""
    out = {}
    for key, name in environ.items():
        target = key[len(PREFIX):]
        if key.startswith(PREFIX) and target.startswith(TARGET_PREFIX) and name and target not in environ:
            out[target] = name
    return out


def load_parameters(environ: MutableMapping[str, str] | None = None, *, client=None) -> list[str]:
    """Fill ``environ`` from SSM; returns the variables set. AwsError names missing parameters.
    AWS settings come from ``os.environ``, as boto3 takes them."""
    environ = os.environ if environ is None else environ
    targets = wanted(environ)
    if not targets:
        return []
    names = sorted(set(targets.values()))
    action = "SSM parameters " + ", ".join(names)
    batches = [names[start:start + BATCH] for start in range(0, len(names), BATCH)]
    values: dict[str, str] = {}
    direct = None if client is not None else direct_target(os.environ)
    if direct:
        for batch in batches:
            values.update(found(call(direct, "AmazonSSM.GetParameters", {"Names": batch, "WithDecryption": True},
                                     action)))
    else:
        with aws_errors(action):
            client = client or build_client("ssm")  # region and endpoint from the standard AWS_* variables
            for batch in batches:
                values.update(found(client.get_parameters(Names=batch, WithDecryption=True)))
    missing = [name for name in names if name not in values]  # InvalidParameters, or left out of the answer
    if missing:
        raise AwsError("SSM parameters not found (or not readable): " + ", ".join(missing))
    for target, name in targets.items():
        environ[target] = values[name]
    return sorted(targets)


def found(answer: Mapping) -> dict[str, str]:
    """Name as asked -> value, from one GetParameters answer (boto3's or the JSON one: the same
    shape). A name asked with a version or label ('/a:3') comes back as Name '/a', Selector ':3'."""
    try:
        return {str(p["Name"]) + str(p.get("Selector") or ""): str(p["Value"]) for p in answer.get("Parameters") or []}
    except (KeyError, TypeError, AttributeError):  # not the documented shape: say so, never quote it (secrets)
        raise AwsError("SSM GetParameters answered in an unexpected shape (Parameters without Name or Value)") \
            from None


def direct_target(env: Mapping[str, str]) -> Target | None:
    """The direct call's target, or None where boto3 must decide (see the module docstring)."""
    region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or ""  # boto3 reads the first only
    key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not (key and secret and STANDARD_REGION.fullmatch(region)) or any(env.get(n) for n in BOTOCORE_ONLY):
        return None
    config = env.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    if os.path.exists(config):  # a profile there may set an endpoint, FIPS, a CA bundle...
        return None
    url = env.get("AWS_ENDPOINT_URL_SSM") or env.get("AWS_ENDPOINT_URL") or f"https://ssm.{region}.amazonaws.com"
    return Target(url, region, "ssm", key, secret, env.get("AWS_SESSION_TOKEN", ""), env.get("AWS_CA_BUNDLE", ""))
