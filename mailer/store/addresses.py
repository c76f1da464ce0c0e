"""Address validation and normalization (syntax only: no DNS, works offline)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from ..errors import SubscriberError

MAX_LENGTH = 320


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
    try:
        result = validate_email(display, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid address {display!r}: {exc}", address=display) from None
    return display, f"{result.local_part.lower()}@{result.ascii_domain.lower()}"
