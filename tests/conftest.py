"""Test configuration. Fixtures live in tests/fixtures/<area>.py, one file per area,
all loaded here, so parallel work on different areas does not collide."""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)
