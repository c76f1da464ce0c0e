"""CSS inlining with premailer, minus the work it repeats on every call.

Only the content fragment (``div.c``) is inlined, as a parsed tree:
``content.css`` is about the content alone, and running premailer over the
whole page parsed and re-serialised ~12 KB of MJML layout that no rule
matched (half of its time). Its rules need no ``.c`` scope for the same reason.

Every email carries the same ``content.css``, but premailer derives the same
things from it on each ``transform``: the inlinable rules (re-serialising every
property through cssutils) and each rule's declarations as pairs; the author's
own ``style`` attributes on elements a rule matches (Pygments' ``<pre>``) are
parsed again too, with validation. What it derives is kept per stylesheet in
this process and, as JSON, in the private cache folder between processes
(``templating.private_cache_folder``), so a later ``render``/``check`` of an
editor's loop does not load cssutils at all (its import and tokenizer were
~25 ms of each cold run). The entries go back into premailer's own function
cache (cachetools' documented ``cache``, ``cache_key`` and ``cache_lock``), so
premailer does the inlining as ever and computes anything not found there
itself. An entry is keyed by the stylesheet, the options and the installed
premailer and cssutils files; the cache is an optimisation only: an unusable
folder or a damaged entry costs the derivation, nothing more.

premailer and cssutils import ``requests``, ``urllib.request`` and more for
fetching external stylesheets; network access is off here, so those load only
if something actually uses them (mailer.issue.lazyimport).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from mailer.errors import RenderError
from mailer.issue.lazyimport import import_deferring

OPTIONS = dict(
    strip_important=False, allow_network=False, disable_link_rewrites=True,
    disable_validation=True, remove_classes=False, exclude_pseudoclasses=True, align_floating_images=False,
)
# What the inlined declarations are parsed with: premailer validates only the author's
# own style attributes (merge_styles calls csstext_to_pairs without `validate`).
_VALIDATE_RULES = not OPTIONS["disable_validation"]

# What premailer and cssutils import only to fetch stylesheets, with the functions
# they take by name at import time; and cssutils itself, needed only to derive
# what the cache has not got.
PREMAILER_DEFERRED = {
    "requests": (), "urllib.request": ("pathname2url", "url2pathname"), "importlib.metadata": (), "encutils": (),
    "cssutils": (),
}

_FORMAT = 1  # of a cache entry; a change makes every old entry a miss
_STYLES_MAX = 64  # distinct style attributes in one issue taken from the cache (premailer's holds 128)
_ENTRY_STYLES_MAX = 512  # style attributes one entry remembers (Pygments makes a few dozen at most)
_MEMORY_MAX = 16  # stylesheets per process; a cap keeps edits in `preview` from piling up


@dataclass
class Derived:
    """What premailer derives from one stylesheet (as its ruleset 0)."""

    rules: list[tuple]  # (specificity, selector, declarations), as _parse_style_rules gives them
    leftover: str  # what cannot be inlined (media queries, pseudo-classes) as CSS text
    pairs: dict[str, list[tuple[str, str]]]  # declarations -> csstext_to_pairs(declarations, validate=...)
    styles: dict[str, list[tuple[str, str]]]  # the author's style attributes premailer parsed -> their pairs
    path: Path | None = field(default=None, repr=False, compare=False)  # its file in the cache folder (not saved)


_MEMORY: dict[str, Derived] = {}


def _quiet(cssutils) -> None:
    # What premailer's cssutils_logging_level does on every Premailer(), once cssutils is
    # loaded: its warnings about odd CSS in an author's style attribute are not ours to print.
    cssutils.log.setLevel(logging.CRITICAL)


@functools.cache
def _premailer_class():
    premailer = import_deferring("premailer", PREMAILER_DEFERRED, on_load={"cssutils": _quiet})

    class _CachedPremailer(premailer.Premailer):
        def _parse_style_rules(self, css_body, ruleset_index):
            hit = _MEMORY.get(css_body) if ruleset_index == 0 else None
            if hit is None:
                return super()._parse_style_rules(css_body, ruleset_index)
            # Callers get fresh lists (premailer extends them). The leftover rules matter only
            # for a <head>, which there is none of (disable_leftover_css): inline_css returns them.
            return list(hit.rules), []

        def derive(self, css: str) -> Derived:
            rules, leftover = super()._parse_style_rules(css, 0)
            pairs = {bulk: _to_pairs()(bulk, validate=_VALIDATE_RULES) for _, _, bulk in rules}
            return Derived(rules, self._css_rules_to_string(leftover) if leftover else "", pairs, {})

    return _CachedPremailer


def _to_pairs():
    return sys.modules["premailer.merge_style"].csstext_to_pairs  # loaded with premailer


# -- the cache between processes -------------------------------------------------------------
def _entry_path(css: str) -> Path | None:
    from mailer.templating import private_cache_folder

    folder = private_cache_folder()
    if folder is None:
        return None
    try:
        libraries = []
        for name in ("premailer", "cssutils"):  # found, not imported: an upgrade changes the files
            origin = importlib.util.find_spec(name).origin
            st = os.stat(origin)
            libraries.append([origin, st.st_mtime_ns, st.st_size])
    except (AttributeError, ImportError, OSError, TypeError, ValueError):
        return None
    key = json.dumps([_FORMAT, css, sorted(OPTIONS.items()), libraries, sys.version_info[:2]])
    return folder / f"twir-mail-css-{hashlib.sha256(key.encode()).hexdigest()}.json"


def _pairs(data) -> dict[str, list[tuple[str, str]]]:
    return {str(k): [(str(a), str(b)) for a, b in v] for k, v in data.items()}


def _load(path: Path | None) -> Derived | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_bytes())
        rules = [(tuple(int(n) for n in spec), str(selector), str(bulk)) for spec, selector, bulk in data["rules"]]
        return Derived(rules, str(data["leftover"]), _pairs(data["pairs"]), _pairs(data["styles"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # none yet, or damaged: derive again
        return None


def _save(path: Path | None, derived: Derived) -> None:
    if path is None:
        return
    from mailer.atomicfile import atomic_open

    try:
        with atomic_open(path, "w", encoding="utf-8", private=True) as fh:
            json.dump({"rules": derived.rules, "leftover": derived.leftover, "pairs": derived.pairs,
                       "styles": derived.styles}, fh)
    except (OSError, ValueError):  # read-only or full disk: the next run derives again
        pass


# -- inlining ----------------------------------------------------------------------------------
def _remember(css: str, derived: Derived) -> None:
    if css not in _MEMORY and len(_MEMORY) >= _MEMORY_MAX:
        _MEMORY.clear()
    _MEMORY[css] = derived


def _derived(premailer, css: str) -> Derived:
    """What premailer derives from ``css``: from memory, from disk, or computed (and saved)."""
    derived = _MEMORY.get(css)
    if derived is None:
        path = _entry_path(css)
        derived = _load(path)
        if derived is None:
            derived = premailer.derive(css)
            _save(path, derived)
        derived.path = path  # for _harvest: the name is a hash of the stylesheet and library files
        _remember(css, derived)
    return derived


def _function_cache():
    """premailer's cache of csstext_to_pairs, its key function and lock (cachetools' attributes)."""
    to_pairs = _to_pairs()
    parts = tuple(getattr(to_pairs, attr, None) for attr in ("cache", "cache_key", "cache_lock"))
    return parts if None not in parts else None  # another premailer: it computes everything itself


def _prefill(derived: Derived, styles: set[str]) -> None:
    """Put what ``derived`` knows into premailer's function cache, keyed as premailer asks for it."""
    found = _function_cache()
    if found is None or len(styles) > _STYLES_MAX:  # (its cache holds 128 of everything)
        return
    cache, key, lock = found
    with lock:
        for bulk, pairs in derived.pairs.items():
            cache.setdefault(key(bulk, validate=_VALIDATE_RULES), pairs)
        for style in styles & derived.styles.keys():
            cache.setdefault(key(style), derived.styles[style])


def _harvest(css: str, derived: Derived, styles: set[str]) -> None:
    """Keep the author's style attributes premailer parsed itself this time (those on elements a
    rule matched; merge_styles parses them with validation, cssutils' slowest path) for next time."""
    found = _function_cache()
    if found is None or len(derived.styles) >= _ENTRY_STYLES_MAX:
        return
    cache, key, lock = found
    with lock:
        new = {style: list(cache[key(style)]) for style in styles - derived.styles.keys() if key(style) in cache}
    if new:
        # A new object, not an update: another thread may be reading the one in _MEMORY.
        derived = replace(derived, styles={**derived.styles, **new})
        _remember(css, derived)
        _save(derived.path, derived)


def inline_css(element, css: str) -> str:
    """Inline ``css`` into the style attributes of ``element`` and its descendants, in place.

    Returns the rules that cannot become style attributes (media queries,
    pseudo-classes) as CSS text for a ``<style>`` block, "" when there are none.
    """
    try:
        # Dropping "unset" properties is a pass over every styled element; only a stylesheet
        # that says "unset" needs it (ours does not).
        premailer = _premailer_class()(element, css_text=[css], disable_leftover_css=True,
                                       remove_unset_properties="unset" in css, **OPTIONS)
        styles = {str(style) for style in element.xpath("descendant-or-self::*/@style") if style}
        derived = _derived(premailer, css)
        _prefill(derived, styles)
        premailer.transform()
        _harvest(css, derived, styles)
        return derived.leftover
    except Exception as exc:  # premailer/cssutils raise assorted errors
        raise RenderError(f"CSS inlining failed: {exc}") from None
