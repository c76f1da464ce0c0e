"""The issue -> email stage: parse the Markdown issue, render HTML + text, minify, lint, preview."""
