"""Write a file so that no reader (and no crash) ever sees half of it.

The content goes to a temporary file beside the target, which is renamed over
the target only once it is complete (a rename within one folder is atomic on
POSIX and Windows); on any failure the temporary file is removed and the
target is left as it was. Used by the outbox transport (one ``.eml`` per
message), ``render`` (the .html/.txt/.eml trio) and ``subscribers export``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, encoding: str | None = None, newline: str | None = None,
                private: bool = False) -> Iterator[IO]:
    """Yield a file to write; when the block ends without an exception it replaces ``path``.

    ``private``: readable by the owner only (personal data), else the usual umask applies.
    An OSError is raised again naming ``path`` (not the temporary name) as its filename.
    """
    path = Path(path)
    # A random suffix: two writers of the same target (or a leftover of a crash) never collide.
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
        with open(fd, mode, encoding=encoding, newline=newline) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        # Name the target, unless the error is another file's (write_files unwinding).
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, str(tmp)):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def write_files(files: dict[Path, str | bytes]) -> None:
    """Every file or none: all are written in full before the first is renamed into place."""
    with contextlib.ExitStack() as stack:
        for path, data in files.items():
            fh = stack.enter_context(atomic_open(path))
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
