"""CSS inlining with premailer, minus the work it repeats on every call.

Only the content fragment (``div.c``) is inlined, as a parsed tree:
``content.css`` is about the content alone, and running premailer over the
whole page parsed and re-serialised ~12 KB of MJML layout that no rule
matched (half of its time). Its rules need no ``.c`` scope for the same reason. Every email carries the same
``content.css``, but premailer re-derives the inlinable rules (and
re-serialises every property through cssutils) on each ``transform``;
``_CachedPremailer`` keeps those rules per stylesheet text.

premailer and cssutils import ``requests``, ``urllib.request`` and more for
fetching external stylesheets; network access is off here, so those load only
if something actually uses them (mailer.issue.lazyimport).
"""

from __future__ import annotations

import functools
import logging

from mailer.errors import RenderError
from mailer.issue.lazyimport import import_deferring

OPTIONS = dict(
    strip_important=False, allow_network=False, disable_link_rewrites=True,
    cssutils_logging_level=logging.CRITICAL, disable_validation=True,
    remove_classes=False, exclude_pseudoclasses=True, align_floating_images=False,
)


# What premailer and cssutils import only to fetch stylesheets, with the functions
# they take by name at import time.
PREMAILER_DEFERRED = {
    "requests": (), "urllib.request": ("pathname2url", "url2pathname"), "importlib.metadata": (), "encutils": (),
}

# (css text, ruleset index) -> (rules, leftover), as premailer returns them.
_RULES: dict[tuple[str, int], tuple[list, list]] = {}
_RULES_MAX = 16  # a handful of stylesheets per process; a cap keeps edits in `preview` from piling up


@functools.cache
def _premailer_class():
    premailer = import_deferring("premailer", PREMAILER_DEFERRED)

    class _CachedPremailer(premailer.Premailer):
        # The rules depend only on the CSS text, its index and OPTIONS, which
        # every instance shares; callers get fresh lists (premailer extends them).
        def _parse_style_rules(self, css_body, ruleset_index):
            key = (css_body, ruleset_index)
            hit = _RULES.get(key)
            if hit is None:
                if len(_RULES) >= _RULES_MAX:
                    _RULES.clear()
                hit = _RULES[key] = super()._parse_style_rules(css_body, ruleset_index)
            return list(hit[0]), list(hit[1])

    return _CachedPremailer


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
        premailer.transform()
        leftover = premailer._parse_style_rules(css, 0)[1]  # from the rule cache
        return premailer._css_rules_to_string(leftover) if leftover else ""
    except Exception as exc:  # premailer/cssutils raise assorted errors
        raise RenderError(f"CSS inlining failed: {exc}") from None
