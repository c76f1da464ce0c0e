"""Settings: ``twir-mail.toml`` plus ``TWIR_MAIL_<SECTION>_<KEY>`` overrides.

Loaded and validated once (``load_settings``), then passed explicitly. Every
setting is declared here with its type and default, so an unknown key, a wrong
type or a bad value is a one-line ``ConfigError`` naming the setting.
Secrets (``TWIR_MAIL_SECRET_KEY``, ``TWIR_MAIL_OLD_SECRET_KEYS``, ``TWIR_MAIL_ADDRESS_KEY``,
``TWIR_MAIL_SMTP_PASSWORD``, ``TWIR_MAIL_WEBHOOK_PASSWORD``) come only from the environment.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from mailer.errors import ConfigError

CONFIG_NAME = "twir-mail.toml"
ENV_PREFIX = "TWIR_MAIL_"
# Environment variables that are not <SECTION>_<KEY> settings.
ENV_SPECIAL = {"TWIR_MAIL_CONFIG", "TWIR_MAIL_SECRET_KEY", "TWIR_MAIL_SMTP_PASSWORD", "TWIR_MAIL_WEBHOOK_PASSWORD",
               "TWIR_MAIL_OLD_SECRET_KEYS", "TWIR_MAIL_ADDRESS_KEY"}
# Placeholder used by the embedded defaults; sending for real refuses it.
DEV_SECRET = "dev-insecure-secret-change-me"

REPO_ROOT = Path(__file__).resolve().parent.parent
# email_templates/ at the top of a checkout; installed wheels carry it as mailer/email_templates.
TEMPLATES_DIR = next((p for p in (REPO_ROOT / "email_templates", Path(__file__).resolve().parent / "email_templates")
                      if p.is_dir()), REPO_ROOT / "email_templates")


def _doc(text: str, default: Any = None, **kw) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": text, **kw})
    return field(default=default, metadata={"doc": text, **kw})


@dataclass(frozen=True)
class Newsletter:
    """The ``[newsletter]`` section of twir-mail.toml (``TWIR_MAIL_NEWSLETTER_<KEY>``)."""

    name: str = _doc("Newsletter name shown in the header and List-Id.", "This Week in Rust")
    # "from" is a Python keyword; the TOML key and env var are still `from`.
    from_: str = _doc("From header, `Name <address>`.", "This Week in Rust <newsletter@this-week-in-rust.org>", key="from")
    reply_to: str = _doc("Reply-To address (empty: none).", "")
    subject: str = _doc("Subject template; `{number}` and `{title}` are filled in.", "This Week in Rust {number}")
    list_id: str = _doc("List-Id header value (RFC 2919).", "This Week in Rust <newsletter.this-week-in-rust.org>")
    site_url: str = _doc("Public site; the web link is {site_url}/blog/YYYY/MM/DD/this-week-in-rust-N/.", "https://this-week-in-rust.org")
    # TWIR's own 400 px logo, shown at logo_width: sharp on retina screens.
    logo_url: str = _doc("Header logo (absolute http(s) URL; a square image at least twice logo_width).",
                         "https://this-week-in-rust.org/images/logo400.png")
    logo_width: int = _doc("Displayed width of the header logo in CSS pixels.", 64)
    privacy_url: str = _doc("Privacy-policy link in the footer.", "https://this-week-in-rust.org/pages/privacy-policy.html")
    unsubscribe_mailto: str = _doc("Optional address added to List-Unsubscribe as mailto: (RFC 2369), after the HTTPS link.", "")
    archive_url: str = _doc("List-Archive header URL (empty: no header).", "https://this-week-in-rust.org/blog/archives/index.html")
    postal_address: str = _doc("Physical postal address in the footer of every message (CAN-SPAM); `send` through smtp/ses warns when empty.", "")
    feedback_sender: str = _doc("Sender id, the last field of the Feedback-ID header (Gmail feedback loop).", "twir")
    language: str = _doc("HTML lang attribute.", "en")


@dataclass(frozen=True)
class Sponsor:
    """The ``[sponsor]`` section of twir-mail.toml (``TWIR_MAIL_SPONSOR_<KEY>``)."""

    name: str = _doc("Sponsor name in the footer (empty: no sponsor block). An issue's `Sponsor:` header overrides it.", "")
    url: str = _doc("Sponsor link.", "")
    logo: str = _doc("Optional sponsor logo URL.", "")
    text: str = _doc("Optional line of text under the sponsor name.", "")


@dataclass(frozen=True)
class Check:
    """The ``[check]`` section of twir-mail.toml (``TWIR_MAIL_CHECK_<KEY>``)."""

    html_error_kib: int = _doc("HTML size (KiB) above which `check` fails (Gmail clips near 102 KB).", 100)
    html_warning_kib: int = _doc("HTML size (KiB) above which `check` warns.", 90)
    retired_links: list = _doc("URL prefixes no issue may link to any more (`check` error retired-link).",
                               ["https://this-week-in-rust.us11.list-manage.com/"])
    link_timeout: float = _doc("`check --links`: seconds to wait for one answer.", 10.0)
    link_concurrency: int = _doc("`check --links`: requests in flight at once.", 16)
    link_per_host: int = _doc("`check --links`: requests in flight to one host at once.", 2)
    link_cache: str = _doc("`check --links`: cache file of links found good (relative to the config file).",
                           ".twir-mail-links.json")
    link_cache_days: float = _doc("`check --links`: a link found good is not fetched again for this long.", 7.0)


@dataclass(frozen=True)
class Render:
    """The ``[render]`` section of twir-mail.toml (``TWIR_MAIL_RENDER_<KEY>``)."""

    templates_dir: str = _doc("Folder with the MJML/Jinja2 templates (empty: the bundled email_templates/).", "")
    minify: bool = _doc("Minify the final HTML.", True)


@dataclass(frozen=True)
class Database:
    """The ``[database]`` section of twir-mail.toml (``TWIR_MAIL_DATABASE_<KEY>``)."""

    url: str = _doc("SQLAlchemy URL. Relative sqlite paths are relative to the config file.", "sqlite:///twir-mail.db")


@dataclass(frozen=True)
class Transport:
    """The ``[transport]`` section of twir-mail.toml (``TWIR_MAIL_TRANSPORT_<KEY>``)."""

    kind: str = _doc("Where messages go: outbox | smtp | ses.", "outbox", choices=("outbox", "smtp", "ses"))


@dataclass(frozen=True)
class Outbox:
    """The ``[outbox]`` section of twir-mail.toml (``TWIR_MAIL_OUTBOX_<KEY>``)."""

    dir: str = _doc("Folder the outbox transport writes .eml files into (relative to the config file).", "outbox")


@dataclass(frozen=True)
class Smtp:
    """The ``[smtp]`` section of twir-mail.toml (``TWIR_MAIL_SMTP_<KEY>``)."""

    host: str = _doc("SMTP relay host.", "localhost")
    port: int = _doc("SMTP port (587 STARTTLS, 465 implicit TLS).", 587)
    security: str = _doc("starttls | tls | none (none only for loopback testing).", "starttls", choices=("starttls", "tls", "none"))
    username: str = _doc("SMTP login (password from TWIR_MAIL_SMTP_PASSWORD).", "")
    timeout: float = _doc("Socket timeout, seconds.", 30.0)


@dataclass(frozen=True)
class Ses:
    """The ``[ses]`` section of twir-mail.toml (``TWIR_MAIL_SES_<KEY>``)."""

    region: str = _doc("AWS region of the SES account.", "us-east-1")
    configuration_set: str = _doc("SES configuration set (event destination for bounces/complaints).", "")
    endpoint_url: str = _doc("Override the SES endpoint (tests point it at a local emulator).", "")
    rate: float = _doc("Messages per second (0: the account's MaxSendRate).", 0.0)
    sns_topic: str = _doc("SNS topic name `ses setup` creates for feedback.", "twir-mail-ses-feedback")


@dataclass(frozen=True)
class Send:
    """The ``[send]`` section of twir-mail.toml (``TWIR_MAIL_SEND_<KEY>``)."""

    workers: int = _doc("Concurrent sending threads.", 8)
    max_consecutive_failures: int = _doc("Pause the campaign after this many permanent failures in a row.", 50)
    max_retries: int = _doc("Retries of a throttled/5xx/connection error before giving up for now.", 8)
    test_subject_prefix: str = _doc("Subject prefix of test sends.", "[TEST] ")
    preview_list: str = _doc("List used by `send --to preview`.", "preview")
    live_poll_seconds: float = _doc("`send --when-live`: first wait between two looks at the issue's web page (doubles up to 5 minutes).", 30.0)


@dataclass(frozen=True)
class Web:
    """The ``[web]`` section of twir-mail.toml (``TWIR_MAIL_WEB_<KEY>``)."""

    base_url: str = _doc("Public URL of the web app; unsubscribe links are {base_url}/unsubscribe/TOKEN.", "http://127.0.0.1:8000")
    host: str = _doc("`serve` bind address.", "127.0.0.1")
    port: int = _doc("`serve` port.", 8000)
    subscribe_rate_per_hour: int = _doc("Subscribe requests allowed per address and per client per hour.", 5)
    confirmations_per_address: int = _doc("Confirmation mails one address can get ...", 1)
    confirmation_window_days: int = _doc("... within this many days (the mail promises not to write again).", 30)


@dataclass(frozen=True)
class Webhook:
    """The ``[webhook]`` section of twir-mail.toml (``TWIR_MAIL_WEBHOOK_<KEY>``)."""

    topic_arns: list = _doc("SNS topic ARNs accepted on /webhooks/ses.", [])
    basic_auth_user: str = _doc("Optional basic-auth user for the webhook (password from TWIR_MAIL_WEBHOOK_PASSWORD).", "")
    transient_bounce_limit: int = _doc("Suppress an address after this many transient bounces ...", 5)
    transient_bounce_window_days: int = _doc("... within this many days.", 30)
    test_cert_origin: str = _doc("TESTS ONLY: one extra origin trusted for SNS signing certificates. Leave empty.", "")


@dataclass(frozen=True)
class Feedback:
    """The ``[feedback]`` section of twir-mail.toml (``TWIR_MAIL_FEEDBACK_<KEY>``)."""

    queue_url: str = _doc("SQS queue receiving SES events (through SNS or directly); empty: webhook only.", "")
    endpoint_url: str = _doc("Override the SQS endpoint (empty: [ses] endpoint_url, else the AWS default).", "")
    wait_seconds: int = _doc("Long-poll wait of `feedback poll` (SQS allows 0 to 20).", 20)
    visibility_timeout: int = _doc("Seconds a received message stays hidden; one that cannot be applied comes back after it.", 60)


@dataclass(frozen=True)
class Guard:
    """The ``[guard]`` section of twir-mail.toml (``TWIR_MAIL_GUARD_<KEY>``)."""

    max_bounce_rate: float = _doc("Pause a send when hard bounces / messages sent passes this (SES reviews accounts at 0.05).", 0.05)
    max_complaint_rate: float = _doc("Pause a send when complaints / messages sent passes this (SES reviews at 0.001).", 0.002)
    min_sent: int = _doc("Judge the rates only once this many messages of the run were sent.", 200)


SECTIONS: dict[str, type] = {
    "newsletter": Newsletter,
    "sponsor": Sponsor,
    "check": Check,
    "render": Render,
    "database": Database,
    "transport": Transport,
    "outbox": Outbox,
    "smtp": Smtp,
    "ses": Ses,
    "send": Send,
    "web": Web,
    "webhook": Webhook,
    "feedback": Feedback,
    "guard": Guard,
}


def _masked_repr(plain):
    def __repr__(self) -> str:
        return mask(plain(self))
    return __repr__


# A section's repr reaches logs, tracebacks and `unexpected` errors: a database URL's password is
# masked there as in `config` (Settings' own repr is made of these).
for _section in SECTIONS.values():
    _section.__repr__ = _masked_repr(_section.__repr__)


@dataclass(frozen=True)
class Settings:
    """Every setting, validated once by ``load_settings`` and passed explicitly; secrets never in its repr."""

    newsletter: Newsletter = field(default_factory=Newsletter)
    sponsor: Sponsor = field(default_factory=Sponsor)
    check: Check = field(default_factory=Check)
    render: Render = field(default_factory=Render)
    database: Database = field(default_factory=Database)
    transport: Transport = field(default_factory=Transport)
    outbox: Outbox = field(default_factory=Outbox)
    smtp: Smtp = field(default_factory=Smtp)
    ses: Ses = field(default_factory=Ses)
    send: Send = field(default_factory=Send)
    web: Web = field(default_factory=Web)
    webhook: Webhook = field(default_factory=Webhook)
    feedback: Feedback = field(default_factory=Feedback)
    guard: Guard = field(default_factory=Guard)
    # Secrets, from the environment only (key derivation and rotation: mailer/keys.py, docs/keys.md).
    secret_key: str = field(default=DEV_SECRET, repr=False)
    old_secret_keys: tuple[str, ...] = field(default=(), repr=False)  # still accepted for tokens; newest first
    address_key: str = field(default="", repr=False)  # root of the address-hash key (empty: the oldest secret)
    smtp_password: str = field(default="", repr=False)
    webhook_password: str = field(default="", repr=False)
    # Folder relative paths are resolved against (the config's folder, else cwd).
    base_dir: Path = field(default_factory=Path.cwd)
    config_path: Path | None = None
    # "section.key" -> where a non-default value came from: "file" or "environment NAME".
    origins: dict = field(default_factory=dict, compare=False)

    # -- derived values -------------------------------------------------
    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_url(self) -> str:
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            return prefix + str(self.path(url[len(prefix):]))
        return url

    @property
    def outbox_dir(self) -> Path:
        return self.path(self.outbox.dir)

    @property
    def link_cache_path(self) -> Path:
        return self.path(self.check.link_cache)

    @property
    def templates_dir(self) -> Path:
        return self.path(self.render.templates_dir) if self.render.templates_dir else TEMPLATES_DIR

    @property
    def has_real_secret(self) -> bool:
        return bool(self.secret_key) and self.secret_key != DEV_SECRET and len(self.secret_key) >= 16


def toml_key(f) -> str:
    return f.metadata.get("key", f.name)


def iter_settings():
    """Yield (section, key, field) for every declared setting (docs, tests)."""
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            yield section, toml_key(f), f


# -- showing settings ---------------------------------------------------------

MASK = "***"
# user:password@ in any URL-looking text, up to the last "@" of the word: a malformed URL
# (an unescaped "@" or "/" in the password) is masked too, never half-shown. Tried once per run
# of scheme characters, from its start and without backtracking into it (the scheme is the run
# from its first letter): tried at every letter, a long value made `config` quadratic (100 KB: 30 s).
_URL_PASSWORD = re.compile(r"(?<![a-z0-9+.\-])([0-9+.\-]*+[a-z][a-z0-9+.\-]*+://[^:@/\s'\"]*):([^\s'\"]*)@", re.I)
# libpq and friends also take credentials as query parameters (?password=...).
_QUERY_SECRET = re.compile(r"([?&;](?:password|passwd|pwd|secret|token|sslpassword|access_key|secret_key)=)"
                           r"[^&;\s'\"]*", re.I)


_WORD = re.compile(r"[^\s'\"]+")


def _mask_word(match: re.Match) -> str:
    # One word at a time, and only up to its last "@": past it no URL can hold a password, and
    # there each scheme would scan to the end of the word in vain ("a://:" x 8,000: 2.3 s).
    word = match.group()
    if "@" not in word or "://" not in word:
        return word
    head, _, tail = word.rpartition("@")
    return _URL_PASSWORD.sub(rf"\1:{MASK}@", head + "@") + tail


def mask(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every password or secret masked: URL credentials, password query
    parameters and any of ``secrets`` (the environment's secret values) quoted verbatim.
    The one place that decides what a shown or quoted setting may reveal."""
    out = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, _WORD.sub(_mask_word, text))
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, MASK)
    return out


def origin(settings: Settings, name: str) -> str:
    """Where ``section.key``'s value came from: default, file or environment VAR."""
    return settings.origins.get(name, "default")


def secret_settings(settings: Settings) -> list[tuple[str, str]]:
    """(environment variable, value) of each secret; values only ever shown masked."""
    return [("TWIR_MAIL_SECRET_KEY", "" if settings.secret_key == DEV_SECRET else settings.secret_key),
            ("TWIR_MAIL_SMTP_PASSWORD", settings.smtp_password),
            ("TWIR_MAIL_WEBHOOK_PASSWORD", settings.webhook_password),
            ("TWIR_MAIL_OLD_SECRET_KEYS", ",".join(settings.old_secret_keys)),
            ("TWIR_MAIL_ADDRESS_KEY", settings.address_key)]


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Every secret value on its own (each old key too), for ``mask``."""
    return ("" if settings.secret_key == DEV_SECRET else settings.secret_key, settings.smtp_password,
            settings.webhook_password, settings.address_key, *settings.old_secret_keys)


def as_toml(settings: Settings) -> str:
    """Every setting as valid TOML, each value followed by its origin, secrets masked."""
    import tomli_w

    secrets = secret_values(settings)
    lines = [f"# config file: {settings.config_path or '(none: built-in defaults)'}",
             f"# relative paths from: {settings.base_dir}"]
    current = None
    for section, key, f in iter_settings():
        if section != current:
            lines += ["", f"[{section}]"]
            current = section
        value = getattr(getattr(settings, section), f.name)
        if isinstance(value, str):
            value = mask(value, secrets)
        elif isinstance(value, list):
            value = [mask(v, secrets) for v in value]
        shown = tomli_w.dumps({key: value}).strip()
        lines.append(f"{shown}  # {origin(settings, f'{section}.{key}')}")
    lines.append("")
    for name, value in secret_settings(settings):
        state = f"set ({MASK})" if value else "not set"
        if name == "TWIR_MAIL_SECRET_KEY" and not value:
            state = "not set (development placeholder)"
        lines.append(f"# {name}: {state}")
    return "\n".join(lines) + "\n"


def unconfigured_paths(settings: Settings, *, outbox: bool = False) -> list[tuple[str, Path]]:
    """What a command is about to create on built-in defaults alone (no config file, no
    environment setting): ("database", file) and, with ``outbox``, ("outbox", folder)."""
    if settings.config_path is not None:
        return []
    found = []
    url = settings.database_url
    if origin(settings, "database.url") == "default" and url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        if not db.exists():
            found.append(("database", db))
    if (outbox and settings.transport.kind == "outbox" and origin(settings, "outbox.dir") == "default"
            and not settings.outbox_dir.exists()):
        found.append(("outbox", settings.outbox_dir))
    return found


# Written uncommented by `init`: where the files go, and the local outbox (nothing leaves).
_INIT_SET = {("database", "url"), ("transport", "kind"), ("outbox", "dir")}


def config_template() -> str:
    """A new twir-mail.toml (`init`): every setting documented from its declaration,
    commented out at its default except the few a new editor should see set."""
    import tomli_w

    out = ["# twir-mail settings, written by `twir-mail init`. Every setting is listed with its",
           "# meaning; commented ones are at their default. `twir-mail config` shows the values in",
           "# effect and where each came from. Environment variables TWIR_MAIL_<SECTION>_<KEY>",
           "# override this file. Relative paths are relative to this file's folder.",
           "#",
           "# Secrets are never read from this file, only from the environment:",
           "#   TWIR_MAIL_SECRET_KEY (required for smtp/ses sends), TWIR_MAIL_SMTP_PASSWORD,",
           "#   TWIR_MAIL_WEBHOOK_PASSWORD. AWS credentials come from boto3's usual chain."]
    current = None
    for section, key, f in iter_settings():
        if section != current:
            out += ["", f"[{section}]"]
            current = section
        default = f.default_factory() if callable(f.default_factory) else f.default
        # A value (a long list) or a description may span lines: each line is commented.
        value = tomli_w.dumps({key: default}).strip().splitlines()
        out += [f"# {doc}".rstrip() for doc in f.metadata["doc"].splitlines()]
        out += value if (section, key) in _INIT_SET else [f"# {line}" for line in value]
    return "\n".join(out) + "\n"


# -- loading ------------------------------------------------------------------

def find_config(explicit: str | Path | None, env: Mapping[str, str]) -> Path | None:
    """--config, else TWIR_MAIL_CONFIG, else ./twir-mail.toml if present."""
    candidate = explicit or env.get("TWIR_MAIL_CONFIG")
    if candidate:
        path = Path(candidate).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}", setting="--config")
        return path
    local = Path.cwd() / CONFIG_NAME
    if local.exists() and not local.is_file():  # not silently the built-in defaults
        raise ConfigError("is a directory, not a settings file", setting="--config", path=local)
    return local if local.is_file() else None


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", path=path) from None
    except UnicodeDecodeError as exc:  # tomllib reads bytes but decodes them all as UTF-8 first
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(f"invalid TOML: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})", path=path,
                          line=line) from None
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        msg = getattr(exc, "msg", str(exc)).split(" (at line")[0]
        raise ConfigError(f"invalid TOML: {msg}", path=path, line=line) from None


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list}


def _coerce(value: Any, f, name: str, path: Path | None = None) -> Any:
    """Convert a TOML or environment value to the field's type, or fail naming ``name``."""
    kind = _TYPES[f.type]
    from_env = isinstance(value, str) and kind is not str
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            word = value.strip().lower() if from_env else None
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(value, bool):  # TOML true is not a number
            raise ValueError
        if kind is int:
            if from_env:
                return int(value.strip())
            if isinstance(value, int):
                return value
            raise ValueError
        if kind is float:
            if from_env:
                return float(value.strip())
            if isinstance(value, (int, float)):
                return float(value)
            raise ValueError
        if kind is list:
            if from_env:
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return list(value)
            raise ValueError
        if not isinstance(value, str):
            raise ValueError
        return value
    except ValueError:
        raise ConfigError(f"invalid value for {name}: expected {kind.__name__}, got {mask(repr(value))}",
                          setting=name, path=path) from None


def _validate(s: Settings) -> None:
    def bad(name: str, why: str):
        env_name = ENV_PREFIX + name.replace(".", "_").upper()
        why = mask(why, secret_values(s))
        raise ConfigError(f"invalid value for {name} ({env_name}): {why}", setting=name, path=s.config_path)

    for section, key, f in iter_settings():
        choices = f.metadata.get("choices")
        value = getattr(getattr(s, section), f.name)
        if choices and value not in choices:
            bad(f"{section}.{key}", f"{value!r} is not one of {', '.join(choices)}")
        # nan passes every comparison below (and inf every upper bound): a nan guard rate never pauses.
        if isinstance(value, float) and not math.isfinite(value):
            bad(f"{section}.{key}", f"{value!r} is not a finite number")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            bad(f"{section}.{key}", "must not be negative")
    name, addr = parseaddr(s.newsletter.from_)
    if "@" not in addr:
        bad("newsletter.from", f"{s.newsletter.from_!r} is not `Name <address>`")
    _validate_urls(s, bad)
    _validate_list_headers(s, bad)
    if "{" in s.newsletter.subject:
        try:
            s.newsletter.subject.format(number=0, title="")
        except (KeyError, IndexError, ValueError) as exc:
            bad("newsletter.subject", f"unknown placeholder {exc}")
    # Out of range, uvicorn hangs after "serving on" and smtplib reports it as a refused connection.
    if not 0 <= s.web.port <= 65535:
        bad("web.port", "is a TCP port: 0 (any free port) to 65535")
    if not 1 <= s.smtp.port <= 65535:
        bad("smtp.port", "is a TCP port: 1 to 65535")
    # smtplib would skip connecting and fail with "please run connect() first". Only for the SMTP
    # transport: an SES or outbox config with an empty [smtp] host loaded before and still does.
    if s.transport.kind == "smtp" and not s.smtp.host.strip():
        bad("smtp.host", "is empty: name the SMTP relay")
    if s.send.workers < 1:
        bad("send.workers", "must be at least 1")
    if s.check.html_warning_kib > s.check.html_error_kib:
        bad("check.html_warning_kib", "must not exceed check.html_error_kib")
    for key in ("max_bounce_rate", "max_complaint_rate"):
        if getattr(s.guard, key) > 1:
            bad(f"guard.{key}", "is a fraction of messages sent: between 0 and 1")
    if s.feedback.wait_seconds > 20:
        bad("feedback.wait_seconds", "SQS waits at most 20 seconds")
    for key in ("link_concurrency", "link_per_host"):
        if getattr(s.check, key) < 1:
            bad(f"check.{key}", "must be at least 1")
    if not all(isinstance(p, str) and p for p in s.check.retired_links):
        bad("check.retired_links", "must be a list of URL prefixes")


# Settings that end up as links, image sources or endpoints; "" = optional and unset.
_REQUIRED_URLS = (("newsletter", "site_url"), ("newsletter", "logo_url"), ("web", "base_url"))
_OPTIONAL_URLS = (("newsletter", "privacy_url"), ("newsletter", "archive_url"), ("ses", "endpoint_url"),
                  ("feedback", "endpoint_url"), ("feedback", "queue_url"), ("sponsor", "url"), ("sponsor", "logo"))
_FEEDBACK_FIELD = re.compile(r"[A-Za-z0-9._-]+")


def is_http_url(url: str) -> bool:
    """Absolute http(s) URL with a host, a port (if any) in 1-65535 and no whitespace (a mail
    client would cut it there): settings' URLs and the AWS endpoint aws/jsoncall.py posts to."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port != 0  # reading .port raises ValueError for one not in 0-65535
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok
            and not any(c.isspace() for c in url))


def _validate_urls(s: Settings, bad) -> None:
    for section, key in _REQUIRED_URLS + _OPTIONAL_URLS:
        url = getattr(getattr(s, section), key)
        if (url or (section, key) in _REQUIRED_URLS) and not is_http_url(url):
            bad(f"{section}.{key}", f"{url!r} is not an http(s) URL (absolute, without spaces)")


def _validate_list_headers(s: Settings, bad) -> None:
    mailto = s.newsletter.unsubscribe_mailto
    if mailto and (mailto != parseaddr(mailto)[1] or "@" not in mailto or not mailto.isascii()
                   or any(c in mailto for c in "?<>,: ")):
        bad("newsletter.unsubscribe_mailto", f"{mailto!r} is not a bare ASCII address (no mailto:, no name)")
    if not _FEEDBACK_FIELD.fullmatch(s.newsletter.feedback_sender):
        bad("newsletter.feedback_sender", "use letters, digits, '.', '_' or '-' (it is a field of Feedback-ID)")


def load_settings(config: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings from defaults, the config file and the environment."""
    env = os.environ if env is None else env
    path = find_config(config, env)
    data = _read_toml(path) if path else {}
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    origins: dict[str, str] = {}

    for section, table in data.items():
        if section not in SECTIONS:
            if section in ("secret_key", "old_secret_keys", "address_key", "smtp_password", "webhook_password"):
                raise ConfigError(f"{section} is a secret: set TWIR_MAIL_{section.upper()} in the environment, not in the file", setting=section, path=path)
            raise ConfigError(f"unknown section [{section}]", setting=section, path=path)
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table", setting=section, path=path)
        declared = {toml_key(f): f for f in fields(SECTIONS[section])}
        for key, value in table.items():
            name = f"{section}.{key}"
            if key == "password" or key == "secret_key":
                raise ConfigError(f"{name} is a secret: set it in the environment (TWIR_MAIL_...), not in the file", setting=name, path=path)
            if key not in declared:
                raise ConfigError(f"unknown setting {name}", setting=name, path=path)
            values[section][declared[key].name] = _coerce(value, declared[key], name, path)
            origins[name] = "file"

    origins.update(_apply_env(env, values))
    base_dir = path.resolve().parent if path else Path.cwd()
    settings = Settings(
        **{name: SECTIONS[name](**vals) for name, vals in values.items()},
        secret_key=env.get("TWIR_MAIL_SECRET_KEY") or DEV_SECRET,
        # Comma or whitespace separated; a secret itself has neither.
        old_secret_keys=tuple(re.split(r"[\s,]+", env.get("TWIR_MAIL_OLD_SECRET_KEYS", "").strip()))
        if env.get("TWIR_MAIL_OLD_SECRET_KEYS", "").strip() else (),
        address_key=env.get("TWIR_MAIL_ADDRESS_KEY", ""),
        smtp_password=env.get("TWIR_MAIL_SMTP_PASSWORD", ""),
        webhook_password=env.get("TWIR_MAIL_WEBHOOK_PASSWORD", ""),
        base_dir=base_dir,
        config_path=path,
        origins=origins,
    )
    _validate(settings)
    return settings


def _apply_env(env: Mapping[str, str], values: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Apply TWIR_MAIL_<SECTION>_<KEY> variables; returns their origins."""
    lookup = {
        f"{ENV_PREFIX}{section}_{key}".upper(): (section, f)
        for section, key, f in iter_settings()
    }
    origins = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_SPECIAL:
            continue
        if name not in lookup:
            raise ConfigError(f"unknown setting in environment: {name}", setting=name)
        section, f = lookup[name]
        values[section][f.name] = _coerce(raw, f, name)
        origins[f"{section}.{toml_key(f)}"] = f"environment {name}"
    return origins


def with_overrides(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy with some section values replaced (tests, CLI flags such as --rate)."""
    changes = {name: replace(getattr(settings, name), **vals) for name, vals in sections.items()}
    origins = dict(settings.origins, **{f"{name}.{toml_key(f)}": "override" for name, vals in sections.items()
                                        for f in fields(SECTIONS[name]) if f.name in vals})
    new = replace(settings, **changes, origins=origins)
    _validate(new)
    return new
