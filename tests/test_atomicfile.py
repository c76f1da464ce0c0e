"""The one write-then-rename helper (outbox messages, render output, subscriber exports)."""

from __future__ import annotations

import os
import stat

import pytest

from mailer.atomicfile import atomic_open, write_files


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_replaces_only_when_complete(tmp_path):
    target = tmp_path / "issue.html"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"half of the new")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old" and leftovers(tmp_path) == []
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write("néw")
    assert target.read_text(encoding="utf-8") == "néw" and leftovers(tmp_path) == []


def test_private_files_are_the_owners_only(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "export.csv", "w", private=True) as fh:
            fh.write("email\n")
        with atomic_open(tmp_path / "issue.html") as fh:
            fh.write(b"<p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "export.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "issue.html").stat().st_mode) == 0o644  # as a plain write would


def test_an_os_error_names_the_target_not_the_temporary_file(tmp_path):
    target = tmp_path / "missing-folder" / "out.eml"
    with pytest.raises(FileNotFoundError) as exc:
        with atomic_open(target) as fh:
            fh.write(b"x")
    assert exc.value.filename == str(target)


def test_write_files_is_all_or_nothing(tmp_path):
    first, second = tmp_path / "a.html", tmp_path / "a.txt"
    first.write_text("old html")
    (tmp_path / "a.eml").mkdir()  # cannot be replaced by a file
    with pytest.raises(OSError) as exc:
        write_files({first: "new html", second: b"new text", tmp_path / "a.eml": b"mail"})
    assert exc.value.filename == str(tmp_path / "a.eml")
    assert first.read_text() == "old html" and not second.exists() and leftovers(tmp_path) == []
    write_files({first: "new html", second: b"new text"})
    assert (first.read_text(), second.read_bytes()) == ("new html", b"new text")
