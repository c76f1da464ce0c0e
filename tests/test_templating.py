"""The shared Jinja2 environment: compiled templates cached between processes, never at the cost of a render."""

from __future__ import annotations

import errno
import tempfile

import jinja2
import pytest

from mailer import templating


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Jinja2's default cache folder under a temp directory of this test's own."""
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    return base


def entries(base):
    return sorted(p for p in base.rglob("*.cache"))


def test_compiled_template_is_reused_and_an_edit_is_seen(tmp_path, own_tmp):
    (tmp_path / "t.html").write_text("Hello {{ name }}")
    first = templating.environment(tmp_path).get_template("t.html")
    assert first.render(name="Ferris") == "Hello Ferris"
    [entry] = entries(own_tmp)
    stamp = entry.stat().st_mtime_ns
    # A new environment (as a new process would build) loads the cached code, writing nothing.
    assert templating.environment(tmp_path).get_template("t.html").render(name="A") == "Hello A"
    assert entries(own_tmp) == [entry] and entry.stat().st_mtime_ns == stamp
    (tmp_path / "t.html").write_text("Goodbye {{ name }}")
    assert templating.environment(tmp_path).get_template("t.html").render(name="B") == "Goodbye B"


def test_a_damaged_entry_is_compiled_again(tmp_path, own_tmp):
    (tmp_path / "t.html").write_text("Hi {{ name }}")
    templating.environment(tmp_path).get_template("t.html")
    [entry] = entries(own_tmp)
    good = entry.read_bytes()
    magic = len(jinja2.bccache.bc_magic)
    for damage in (good[:len(good) // 2], good[:magic] + b"\x00\xff" + good[magic + 2:], good[:6] + b"\x00" * 40, b""):
        entry.write_bytes(damage)
        assert templating.environment(tmp_path).get_template("t.html").render(name="X") == "Hi X"


def test_a_cache_that_cannot_be_written_or_made_costs_nothing_but_time(tmp_path, own_tmp, monkeypatch):
    (tmp_path / "t.html").write_text("Hi {{ name }}")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", full_disk)
    assert templating.environment(tmp_path).get_template("t.html").render(name="Y") == "Hi Y"
    assert entries(own_tmp) == []
    # No usable temp folder at all (here: the "folder" is a file): no cache, same output.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    env = templating.environment(tmp_path)
    assert env.bytecode_cache is None
    assert env.get_template("t.html").render(name="Z") == "Hi Z"


def test_layout_and_pages_use_the_shared_builder():
    from mailer.config import load_settings
    from mailer.issue import render
    from mailer.web.pages import Pages

    settings = load_settings(env={})
    for env in (render._environment(settings.templates_dir), Pages(settings).env):
        assert isinstance(env.bytecode_cache, jinja2.FileSystemBytecodeCache)


def test_an_entry_compiled_with_other_options_is_not_loaded(tmp_path, own_tmp):
    """Autoescaping is compiled in, and Jinja2 keys its entries by template path and source only:
    code compiled without it rendered <b> unescaped in an environment that asks for it."""
    (tmp_path / "t.html").write_text("{{ name }}")
    assert templating.environment(tmp_path, autoescape=False).get_template("t.html").render(name="<b>") == "<b>"
    assert templating.environment(tmp_path, autoescape=True).get_template("t.html").render(name="<b>") == "&lt;b&gt;"
    select = jinja2.select_autoescape(("html",), default_for_string=False, default=False)
    assert templating.environment(tmp_path, autoescape=select).get_template("t.html").render(name="<b>") == "&lt;b&gt;"
    assert len(entries(own_tmp)) == 3
    # The same options in a new process (a new select_autoescape closure): the entry is reused.
    again = jinja2.select_autoescape(("html",), default_for_string=False, default=False)
    templating.environment(tmp_path, autoescape=again).get_template("t.html")
    assert len(entries(own_tmp)) == 3
