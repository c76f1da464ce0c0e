"""Server-rendered pages (Jinja2 templates in email_templates/pages/) and their headers.

Every answer carries headers that keep the token in the URL private
(``Referrer-Policy: no-referrer``, ``Cache-Control: no-store``) and a strict
CSP: the pages need no JavaScript and load nothing from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from starlette.responses import HTMLResponse

from mailer.config import TEMPLATES_DIR, Settings
from mailer.templating import environment

BUNDLED = TEMPLATES_DIR / "pages"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def pages_dir(settings: Settings) -> Path:
    custom = settings.templates_dir / "pages"
    return custom if custom.is_dir() else BUNDLED


class Pages:
    """Renders the site's pages with the newsletter's branding filled in."""

    def __init__(self, settings: Settings):
        self.env = environment(
            pages_dir(settings), undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(("html",), default_for_string=False, default=False),
        )
        news = settings.newsletter
        self.common = {
            "newsletter": news.name,
            "lang": news.language,
            "site_url": news.site_url,
            "site_url_text": urlsplit(news.site_url).netloc or news.site_url,
            "privacy_url": news.privacy_url,
        }

    def text(self, name: str, **ctx) -> str:
        return self.env.get_template(name).render(**self.common, **ctx)

    def page(self, name: str, status: int = 200, **ctx) -> HTMLResponse:
        return HTMLResponse(self.text(name, **ctx), status_code=status, headers=SECURITY_HEADERS)

    def message(self, heading: str, *lines: str, status: int = 200) -> HTMLResponse:
        """A plain page: a heading and a few sentences (errors, 'check your inbox', ...)."""
        return self.page("message.html", status=status, heading=heading, lines=list(lines))
