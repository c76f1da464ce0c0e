#!/usr/bin/env bash
# Build the Lambda package, upload it, and create or update the CloudFormation stack.
#
#   CODE_BUCKET=my-artifacts DOMAIN=this-week-in-rust.org deploy/aws/deploy.sh [extra Key=Value parameters]
#
# Environment: CODE_BUCKET (an existing S3 bucket in the stack's region), DOMAIN, optional
# STACK (default twir-mail), SENDER, AWS_REGION/AWS_PROFILE as usual for the aws CLI.
# Needs: python3 (3.12 wheels are fetched for Lambda's python3.12 x86_64), zip, aws CLI v2.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
stack="${STACK:-twir-mail}"
: "${CODE_BUCKET:?set CODE_BUCKET to an S3 bucket for the Lambda package}"
: "${DOMAIN:?set DOMAIN to the sending domain, e.g. this-week-in-rust.org}"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
python3 -c "import tomllib,sys; print('\n'.join(tomllib.load(open(sys.argv[1],'rb'))['project']['dependencies']))" \
    "$root/pyproject.toml" > "$build/requirements.txt"
# Wheels for the Lambda runtime, whatever this machine is.
python3 -m pip install --quiet --disable-pip-version-check --target "$build/pkg" \
    --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 --only-binary=:all: \
    -r "$build/requirements.txt"
# The source tree as is: templates in email_templates/ sit next to the package.
cp -r "$root/mailer" "$root/email_templates" "$build/pkg/"
find "$build/pkg" -name __pycache__ -prune -exec rm -rf {} +
key="twir-mail/lambda-$(cd "$root" && git rev-parse --short=12 HEAD 2>/dev/null || date +%s)-$(date +%Y%m%d%H%M%S).zip"
(cd "$build/pkg" && zip -q -r -9 "$build/lambda.zip" .)
aws s3 cp --only-show-errors "$build/lambda.zip" "s3://$CODE_BUCKET/$key"

params=(Domain="$DOMAIN" CodeBucket="$CODE_BUCKET" CodeKey="$key")
[[ -n "${SENDER:-}" ]] && params+=(Sender="$SENDER")
aws cloudformation deploy --stack-name "$stack" --template-file "$here/template.yaml" \
    --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "${params[@]}" "$@"
aws cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
