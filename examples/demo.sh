#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults (SQLite, local outbox).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
TM="$BIN/twir-mail --config examples/twir-mail.toml"

echo "== check"
$TM check examples/*.md || true
echo "== render"
$TM render examples/*.md -o examples/build
echo
echo "Rendered email: $(ls examples/build/*.html)"
echo "Plain text:     $(ls examples/build/*.txt)"
echo "Sample message: $(ls examples/build/*.eml)"
