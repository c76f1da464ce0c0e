"""Secrets from AWS SSM Parameter Store into the environment, before settings load.

The Lambda function's configuration holds only parameter *names*: for every
``SSM_TWIR_MAIL_<X>=/path/of/parameter`` variable, the decrypted value of that
SecureString becomes ``TWIR_MAIL_<X>`` (unless ``TWIR_MAIL_<X>`` is set already,
which lets a local run override it). One GetParameters call per cold start,
through the shared client builder (mailer/aws/client.py: 5 s connect timeout,
three attempts), so an unreachable endpoint fails the cold start quickly.
"""

from __future__ import annotations

import os
from typing import MutableMapping

from mailer.aws.client import AwsError, aws_errors, build_client

PREFIX = "SSM_"
TARGET_PREFIX = "TWIR_MAIL_"


def wanted(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Target variable -> parameter name, for the targets not already set."""
    out = {}
    for key, name in environ.items():
        target = key[len(PREFIX):]
        if key.startswith(PREFIX) and target.startswith(TARGET_PREFIX) and name and target not in environ:
            out[target] = name
    return out


def load_parameters(environ: MutableMapping[str, str] | None = None, *, client=None) -> list[str]:
    """Fill ``environ`` from SSM; returns the variables set. AwsError names missing parameters."""
    environ = os.environ if environ is None else environ
    targets = wanted(environ)
    if not targets:
        return []
    names = sorted(set(targets.values()))
    with aws_errors("SSM parameters " + ", ".join(names)):
        if client is None:
            client = build_client("ssm")  # region and endpoint from the standard AWS_* variables
        values: dict[str, str] = {}
        for start in range(0, len(names), 10):  # GetParameters takes at most 10 names
            answer = client.get_parameters(Names=names[start:start + 10], WithDecryption=True)
            if answer.get("InvalidParameters"):
                raise AwsError("SSM parameters not found (or not readable): " + ", ".join(answer["InvalidParameters"]))
            values.update({p["Name"]: p["Value"] for p in answer.get("Parameters", [])})
    for target, name in targets.items():
        environ[target] = values[name]
    return sorted(targets)
