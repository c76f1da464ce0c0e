"""AWS plumbing: the boto3 client builder and error decoder, SSM parameters, SES administration,
SNS signature verification, DKIM checks."""
