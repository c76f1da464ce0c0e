"""Address validation and normalization (syntax only: no DNS, works offline).

email-validator does the validating. Its domain check is the costly part of a
large import and domains repeat (gmail.com ...), so plain ``dot-atom`` local
parts take a fast path with the domain's verdict cached; anything unusual
(quoted, non-ASCII, suspect) goes through the full validator. A property test
checks both paths agree.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailer.errors import SubscriberError

MAX_LENGTH = 320
# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
FORMULA_LEADING = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# RFC 5322 dot-atom over ASCII atext (what email-validator accepts unquoted, minus its non-ASCII cases).
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@lru_cache(maxsize=1)
def _validator():
    # Imported on first use (~20 ms of regex compiling): the one-click unsubscribe path
    # of a cold Lambda never validates an address.
    from email_validator import EmailNotValidError, validate_email

    return EmailNotValidError, validate_email


@lru_cache(maxsize=65536)
def _ascii_domain(domain: str) -> str | None:
    EmailNotValidError, validate_email = _validator()
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).ascii_domain.lower()
    except EmailNotValidError:
        return None


def normalize(email: str) -> tuple[str, str]:
    """Return ``(display, norm)`` or raise SubscriberError naming the address.

    ``display`` is what the person typed (trimmed); ``norm`` is the identity:
    local part lower-cased (case-insensitive uniqueness, as every real
    provider treats it) and the domain in lower-case IDNA (ASCII) form.
    """
    if not isinstance(email, str):
        raise SubscriberError(f"not an address: {email!r}", address=str(email))
    display = email.strip()
    if not display:
        raise SubscriberError("empty address", address=email)
    if len(display) > MAX_LENGTH:
        raise SubscriberError(f"address longer than {MAX_LENGTH} characters", address=display[:40] + "...")
    local, _, domain = display.rpartition("@")
    if local and len(local) <= 64 and _DOT_ATOM.match(local):
        ascii_domain = _ascii_domain(domain)
        if ascii_domain is not None and len(local) + 1 + len(ascii_domain) <= 254 and len(display) <= 254:
            return display, f"{local.lower()}@{ascii_domain}"
    return full_normalize(display)


def only_new(addresses, emails) -> list[str]:
    """``addresses`` minus those already among ``emails`` or typed earlier, compared normalised
    (the one rule for "the same recipient" of a test send: counted, built and frozen once)."""
    seen = {normalize(e)[1] for e in emails if e}
    out = []
    for address in addresses:
        key = normalize(address)[1]
        if key not in seen:
            seen.add(key)
            out.append(address)
    return out


def full_normalize(display: str) -> tuple[str, str]:
    """The slow path: email-validator on the whole address (and its error message)."""
    EmailNotValidError, validate_email = _validator()
    try:
        result = validate_email(display, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid address {display!r}: {exc}", address=display) from None
    return display, f"{result.local_part.lower()}@{result.ascii_domain.lower()}"


def spellings(norm: str, typed: str | None = None) -> list[str]:
    """Lower-cased ways an address may be written in free text: as typed, normalized (ASCII
    domain) and with the domain in Unicode (``bücher.de`` / ``xn--bcher-kva.de``)."""
    local, _, domain = norm.rpartition("@")
    out = {norm, (typed or norm).strip().lower()}
    try:
        out.add(f"{local}@{domain.encode('ascii').decode('idna')}")
    except UnicodeError:
        pass
    return sorted(out)


def undeliverable(display: str) -> str | None:
    """Why the sender could never deliver to this (valid) address, or None.

    A non-ASCII local part needs SMTPUTF8, which SES does not offer: accepted, it would
    fail at every send. New addresses (form, `add`, `import`) are refused with this reason;
    lookups (`show`, `forget`) still accept it, so an old row can be removed."""
    local = display.rpartition("@")[0]
    if not local.isascii():
        return "the part before @ has non-ASCII characters, which Amazon SES cannot deliver to (no SMTPUTF8)"
    return None


def control_character(text: str | None) -> str | None:
    """The first control character in ``text`` as ``U+XXXX`` (tab, CR, LF allowed), or None.
    PostgreSQL refuses NUL in text outright; none belongs in an address or a name."""
    found = _CONTROL.search(text or "")
    return f"U+{ord(found.group()):04X}" if found else None


def formula_leading(text: str) -> bool:
    return text.startswith(FORMULA_LEADING)


def neutralise_formula(text: str) -> str:
    """A CSV cell a spreadsheet will show as text: formula-leading cells get a leading \'."""
    return "'" + text if formula_leading(text) else text


def unneutralise_formula(text: str) -> str:
    """The reverse on import, so an export imports back to the same values."""
    return text[1:] if text.startswith("'") and formula_leading(text[1:]) else text
