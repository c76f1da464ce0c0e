"""The one Jinja2 environment builder: the email layout (issue/render.py) and the web pages.

Compiling a template to Python is a few milliseconds each time a process first
uses it: 7-10 ms of every cold `render`/`check`, and of the first page after a
`serve` restart (a new Lambda container starts with an empty /tmp, so it compiles
once, as before). Jinja2's own ``FileSystemBytecodeCache`` keeps the compiled code
between processes, in a private per-user folder of the temp directory that
Jinja2 creates and checks (mode 0700, owned by us); an entry is keyed by the
template's path and checked against its source and the Python version, so an
edited template is compiled afresh. Compiled code also depends on the
environment's options (autoescaping is decided at compile time) and on Jinja2's
version, which Jinja2's key leaves out: the file name carries a fingerprint of
both, so a template compiled by another twir-mail or another environment is
never loaded with the wrong options.

The cache is an optimisation only: when the folder cannot be made safe or a
read or write fails (read-only or full disk, a damaged entry), the template is
compiled as if there were no cache, and rendering goes on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2


class _BestEffortCache(jinja2.FileSystemBytecodeCache):
    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable, or damaged anywhere (pickle, marshal): compile instead
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:  # Jinja2 removes its temporary file; next time compiles again
            pass


def _bytecode_cache(options: dict[str, Any] | None = None) -> _BestEffortCache | None:
    pattern = f"__twir_mail_{_fingerprint(options or {})}_%s.cache"
    try:
        return _BestEffortCache(pattern=pattern)  # Jinja2's default folder: <tmp>/_jinja2-cache-<uid>
    except (OSError, RuntimeError):  # no usable temp folder, or one we do not own
        return None


def _fingerprint(options: dict[str, Any]) -> str:
    """Jinja2's version and the options, stably (a function by its name and closure values:
    select_autoescape's answer is a new closure in every process)."""
    def stable(value: Any) -> str:
        if callable(value):
            cells = [cell.cell_contents for cell in getattr(value, "__closure__", None) or ()]
            return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}{cells!r}"
        return repr(value)

    text = repr((jinja2.__version__, sorted((name, stable(value)) for name, value in options.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def private_cache_folder() -> Path | None:
    """The folder of the bytecode cache, for other best-effort caches between processes
    (issue/inline.py): made and checked by Jinja2 (ours, mode 0700); None when unusable."""
    cache = _bytecode_cache()
    return Path(cache.directory) if cache is not None else None


def environment(folder: Path, **options: Any) -> jinja2.Environment:
    """A Jinja2 environment loading templates from ``folder``, with the shared bytecode cache."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), bytecode_cache=_bytecode_cache(options),
                              **options)
