"""Test configuration. Fixtures live in tests/fixtures/<area>.py, one file per area,
all loaded here, so parallel work on different areas does not collide."""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)

# No per-example deadline for any property test: on a shared, loaded 2-CPU machine one example
# can stall past Hypothesis's default 200 ms ("DeadlineExceeded"), which says nothing about the code.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("twir-mail", deadline=None)
_hypothesis_settings.load_profile("twir-mail")
