"""The test suite's own helpers: what a developer sees when a dependency is missing."""

from __future__ import annotations

import pytest

from tests.fixtures import core, render


def test_missing_chromium_skips_with_one_reason_naming_the_fix(monkeypatch):
    monkeypatch.setattr(render, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    monkeypatch.setattr(core, "STRICT", False)
    with pytest.raises(pytest.skip.Exception) as info:
        render.require_chromium()
    reason = str(info.value)
    assert reason.startswith("headless Chromium unavailable (no chromium at /nonexistent/chromium or on PATH)")
    assert "apt-get install chromium" in reason and "pip install -e '.[test]'" in reason


def test_missing_chromium_fails_in_ci(monkeypatch):
    monkeypatch.setattr(render, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    monkeypatch.setattr(core, "STRICT", True)
    with pytest.raises(pytest.fail.Exception, match="required in CI: headless Chromium unavailable"):
        render.require_chromium()


def test_every_browser_test_uses_the_one_helper():
    """No test file launches Chromium or words its own skip: the reason stays the same everywhere."""
    from pathlib import Path

    tests = Path(__file__).parent
    for path in tests.glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text(encoding="utf-8")
        assert ".chromium.launch(" not in text and "/usr/bin/chromium" not in text, path.name
