#!/usr/bin/env bash
# `make demo`: the main job on the embedded defaults (SQLite, local outbox).
# Starts from a clean slate each time: examples/twir-mail.db, examples/outbox, examples/build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
TM="$BIN/twir-mail --config examples/twir-mail.toml"
ISSUE=examples/2026-07-01-this-week-in-rust.md

rm -rf examples/build examples/outbox examples/twir-mail.db examples/twir-mail.db-wal examples/twir-mail.db-shm

echo "== check: lint the issue before anything is sent"
$TM check "$ISSUE"
echo
echo "== render: HTML, plain text and a sample message"
$TM render "$ISSUE" -o examples/build
echo
echo "== subscribers: editors on the preview list, readers on main (line 6 of the CSV is bad on purpose)"
$TM subscribers add editor@example.org --list preview --name "TWIR Editor"
$TM subscribers import examples/subscribers.csv --list main
$TM subscribers count
echo
echo "== test send to the preview list (subject prefixed [TEST])"
$TM send "$ISSUE" --to preview
echo
echo "== the real send to main, through the local outbox"
$TM send "$ISSUE" --list main --yes
$TM campaigns
echo
echo "Rendered email:  examples/build/$(basename "$ISSUE" .md).html (open it in a browser)"
echo "Plain text:      examples/build/$(basename "$ISSUE" .md).txt"
echo "Sent messages:   examples/outbox/ ($(ls examples/outbox | wc -l) .eml files)"
echo "Look at it live: $TM preview $ISSUE"
