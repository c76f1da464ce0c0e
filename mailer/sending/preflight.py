"""`check` exactly as `send` sees an issue: lint, render, then build the message.

The issue layer cannot build a MIME message (imports run one way), so this is
where `check` and `send` meet: an issue whose message cannot be built (say,
one that renders without its unsubscribe link) fails `check` with the file and
the cause, instead of failing inside `send` after the campaign is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from mailer.config import Settings
from mailer.errors import TwirMailError
from mailer.issue.lint import check_issue, check_parsed, silence
from mailer.models import Finding, Issue, Rendered, Severity
from mailer.sending.message import template_for


def check_message(issue: Issue, settings: Settings, *, ignore: Iterable[str] = (),
                  test: bool = False) -> tuple[list[Finding], Rendered | None]:
    """The findings of `check` plus any failure to build the message `send` would send."""
    ignore = tuple(ignore)
    findings, rendered = check_parsed(issue, settings, ignore=ignore)
    if rendered is not None:
        try:
            template_for(rendered, settings, test).sample()
        except TwirMailError as exc:
            findings.append(Finding(str(issue.path), None, Severity.ERROR,
                                    f"cannot build the message: {exc.message}", "message"))
            findings = silence(findings, issue, ignore)
    return findings, rendered


def check_file(path: str | Path, settings: Settings, *, ignore: Iterable[str] = ()) -> list[Finding]:
    """Every finding for one issue file, the message included; never raises for a bad issue."""
    return check_issue(path, settings, ignore=ignore, checker=check_message)
