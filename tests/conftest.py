"""Test configuration. Fixtures live in tests/fixtures/<area>.py, one file per area,
all loaded here, so parallel work on different areas does not collide."""

from pathlib import Path

import pytest

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)

# Under `make test` (pytest-xdist, --dist loadgroup) tests are spread over workers one by
# one, and each worker builds the session and module fixtures it needs. These are costly
# (the whole corpus rendered, a Chromium launched), so the tests using them share one
# worker and build them once; everything else (databases, moto, ports) is per worker.
SHARED_FIXTURES = {"rendered_corpus": "rendered-corpus", "browser": "chromium"}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, group in SHARED_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))
                break
