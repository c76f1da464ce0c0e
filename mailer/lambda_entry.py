"""AWS Lambda entry point of deploy/aws/template.yaml: ``mailer.lambda_entry.handler``.

At cold start, secrets named by ``SSM_TWIR_MAIL_*`` variables are fetched from
Parameter Store into the environment (mailer/aws/params.py: with the function's
credentials from the environment, one GetParameters call signed and sent with the
standard library, so boto3/botocore are not imported); then every event
goes to the web app's own handler, ``mailer.web.aws_lambda.handler``, which
loads its settings from that environment on the first event.
"""

from __future__ import annotations

from mailer.aws.params import load_parameters
from mailer.web.aws_lambda import handler as web_handler

load_parameters()


def handler(event: dict, context) -> dict:
    return web_handler(event, context)
