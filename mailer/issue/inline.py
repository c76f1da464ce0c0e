"""CSS inlining with premailer, minus the work it repeats on every call.

Every email carries the same ``content.css``, but premailer re-derives the
inlinable rules (and re-serialises every property through cssutils) on each
``transform``. ``_CachedPremailer`` keeps those rules per stylesheet text.

premailer imports ``requests`` at import time (~70 ms) for fetching external
stylesheets; network access is off here, so the import is deferred with the
standard library's LazyLoader: it only executes if something touches it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys

from mailer.errors import RenderError

OPTIONS = dict(
    strip_important=False, allow_network=False, disable_link_rewrites=True,
    cssutils_logging_level=logging.CRITICAL, disable_validation=True,
    remove_classes=False, exclude_pseudoclasses=True, align_floating_images=False,
)


def _lazy_import(name: str) -> None:
    """Register ``name`` so that importing it is free until an attribute is used."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)


# (css text, ruleset index) -> (rules, leftover), as premailer returns them.
_RULES: dict[tuple[str, int], tuple[list, list]] = {}
_RULES_MAX = 16  # a handful of stylesheets per process; a cap keeps edits in `preview` from piling up


@functools.cache
def _premailer_class():
    _lazy_import("requests")
    import premailer

    class _CachedPremailer(premailer.Premailer):
        # The rules depend only on the CSS text, its index and OPTIONS, which
        # every instance shares; callers extend/read the lists, never the tuples.
        def _parse_style_rules(self, css_body, ruleset_index):
            key = (css_body, ruleset_index)
            hit = _RULES.get(key)
            if hit is None:
                if len(_RULES) >= _RULES_MAX:
                    _RULES.clear()
                hit = _RULES[key] = super()._parse_style_rules(css_body, ruleset_index)
            return list(hit[0]), list(hit[1])

    return _CachedPremailer


def inline_css(html: str) -> str:
    """Inline the page's non-ignored <style> rules into style attributes."""
    try:
        return _premailer_class()(html, **OPTIONS).transform(pretty_print=False)
    except Exception as exc:  # premailer/cssutils raise assorted errors
        raise RenderError(f"CSS inlining failed: {exc}") from None
