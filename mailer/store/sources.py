"""Reading import files into rows: plain CSV or Mailchimp's audience export.

Mailchimp's "Export audience" gives a zip with ``subscribed_*.csv``,
``unsubscribed_*.csv`` and ``cleaned_*.csv``; unsubscribed rows are imported as
`unsubscribed` and cleaned (hard-bounced) rows as `bounced`, so moving from
Mailchimp never resends to people who left. Everything streams: one row at a time.
"""

from __future__ import annotations

import csv
import itertools
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from mailer.errors import ImportFileError
from mailer.models import Status
from mailer.store.addresses import unneutralise_formula

MAILCHIMP_KINDS = {"subscribed": Status.SUBSCRIBED, "unsubscribed": Status.UNSUBSCRIBED,
                   "cleaned": Status.BOUNCED}
# Order matters when an address appears in several files: the leaving ones come last and win.
KIND_ORDER = ("subscribed", "unsubscribed", "cleaned")


@dataclass(frozen=True)
class Row:
    where: str  # "file:line" for messages
    email: str
    name: str | None
    status: Status | None  # None: a bad status value (reported by the importer)
    detail: str | None = None
    bad_status: str | None = None
    source: str | None = None  # from an export's `source` column: kept for new rows
    created_at: str | None = None  # from an export's `created_at` column (ISO 8601), checked by the importer


def _delimiter(first_line: str) -> str:
    """Comma, unless the header line has none but a semicolon or tab (European Excel, TSV)."""
    if "," in first_line:
        return ","
    return max((";", "\t"), key=first_line.count) if (";" in first_line or "\t" in first_line) else ","


def _reader(fh: Iterator[str], label: str) -> tuple[csv.reader, list[str]]:
    fh = iter(fh)
    first = next(fh, "")
    reader = csv.reader(itertools.chain([first], fh), delimiter=_delimiter(first))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ImportFileError(f"not a readable CSV file: {exc}", path=label, line=1) from None
    if not header:
        raise ImportFileError("empty file (expected a header row)", path=label, line=1)
    return reader, [h.strip() for h in header]


def _rows(reader, label: str) -> Iterator[tuple[int, list[str]]]:
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFileError(f"unreadable CSV: {exc}", path=label, line=reader.line_num) from None
        if any(v.strip() for v in values):  # blank lines are not rows
            yield reader.line_num, values


def _key(text: str) -> str:
    """Header spelling does not matter: `E-mail Address` = `email_address` = `EmailAddress`."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _column(header: list[str], *names: str) -> int | None:
    keys = [_key(h) for h in header]
    for name in names:
        if _key(name) in keys:
            return keys.index(_key(name))
    return None


def _cell(values: list[str], index: int | None) -> str:
    return values[index].strip() if index is not None and index < len(values) else ""


def _join_name(*parts: str) -> str | None:
    return " ".join(p for p in parts if p) or None


def plain_rows(fh: Iterator[str], label: str) -> Iterator[Row]:
    """A CSV with an `email` column; optional `name` (or first/last name) and `status`."""
    reader, header = _reader(fh, label)
    email = _column(header, "email", "email address")
    if email is None:
        raise ImportFileError(f"no `email` column (columns: {', '.join(header)})", path=label, line=1)
    left = mailchimp_kind("", header)
    if left in ("unsubscribed", "cleaned") and _column(header, "status") is None:
        # Read as a plain CSV, everyone would become `subscribed`: mail people who left Mailchimp.
        raise ImportFileError(f"this is a Mailchimp {left} export: import it with --format mailchimp",
                              path=label, line=1)
    name, first, last = (_column(header, "name"), _column(header, "first_name", "first name"),
                         _column(header, "last_name", "last name"))
    status, source, created = _column(header, "status"), _column(header, "source"), _column(header, "created_at")
    for line, values in _rows(reader, label):
        raw = _cell(values, status).lower()
        try:
            parsed = Status(raw) if raw else Status.SUBSCRIBED
        except ValueError:
            parsed = None
        # `subscribers export` neutralises formula-leading cells with a ': take it off again.
        yield Row(f"{label}:{line}", unneutralise_formula(_cell(values, email)),
                  unneutralise_formula(_cell(values, name)) or _join_name(_cell(values, first), _cell(values, last)),
                  parsed, bad_status=raw if parsed is None else None,
                  source=_cell(values, source)[:32] or None, created_at=_cell(values, created) or None)


def mailchimp_kind(name: str, header: list[str]) -> str | None:
    """subscribed/unsubscribed/cleaned, from the file name, else from the columns."""
    stem = PurePosixPath(name).name.lower()
    for kind in ("unsubscribed", "subscribed", "cleaned"):  # "unsubscribed" before its suffix
        if stem.startswith(kind):
            return kind
    if "UNSUB_TIME" in header:
        return "unsubscribed"
    if "CLEAN_TIME" in header or "CLEAN_CAMPAIGN_TITLE" in header:
        return "cleaned"
    if "OPTIN_TIME" in header:
        return "subscribed"
    return None


def _mailchimp_detail(kind: str, values: list[str], header: list[str]) -> str:
    """What Mailchimp knew about the change (kept in history as evidence)."""
    fields = {"subscribed": ("OPTIN_TIME", "CONFIRM_TIME"),
              "unsubscribed": ("UNSUB_TIME", "UNSUB_CAMPAIGN_TITLE", "UNSUB_REASON"),
              "cleaned": ("CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE")}[kind]
    known = [f"{f}={_cell(values, _column(header, f))}" for f in fields if _cell(values, _column(header, f))]
    return "; ".join([f"mailchimp {kind}", *known])[:500]


def mailchimp_rows(fh: Iterator[str], label: str) -> Iterator[Row]:
    reader, header = _reader(fh, label)
    kind = mailchimp_kind(label, header)
    if kind is None:
        raise ImportFileError("not a Mailchimp export file: expected subscribed_*, unsubscribed_* or cleaned_*.csv",
                              path=label, line=1)
    email = _column(header, "Email Address")
    if email is None:
        raise ImportFileError(f"no `Email Address` column (columns: {', '.join(header)}); "
                              "a plain CSV named like a Mailchimp file needs --format csv", path=label, line=1)
    first, last = _column(header, "First Name"), _column(header, "Last Name")
    for line, values in _rows(reader, label):
        yield Row(f"{label}:{line}", _cell(values, email), _join_name(_cell(values, first), _cell(values, last)),
                  MAILCHIMP_KINDS[kind], _mailchimp_detail(kind, values, header))


def _text(binary, label: str) -> Iterator[str]:
    """Decode line by line, so a bad byte is reported on its own line (not the chunk's)."""
    for number, raw in enumerate(binary, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFileError("not UTF-8 text", path=label, line=number) from None
        if number == 1:
            line = line.removeprefix("\ufeff")  # Excel and some exports start with a byte-order mark
        yield line


def _zip_rows(path: Path) -> Iterator[Row]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ImportFileError("not a zip file", path=path) from None
    with archive:
        members = [m for m in archive.namelist() if m.lower().endswith(".csv") and not m.startswith("__MACOSX")]
        kinds = {m: mailchimp_kind(m, []) for m in members}
        ordered = sorted((m for m in members if kinds[m]), key=lambda m: (KIND_ORDER.index(kinds[m]), m))
        if not ordered:
            raise ImportFileError("no subscribed_*, unsubscribed_* or cleaned_*.csv inside", path=path)
        for member in ordered:
            label = f"{path}/{member}"
            try:
                with archive.open(member) as binary:
                    yield from mailchimp_rows(_text(binary, label), label)
            except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
                # A damaged or encrypted member: rows before it were read fine, this one cannot be.
                raise ImportFileError(f"cannot read this zip member: {exc}", path=label) from None


def detect_format(path: Path) -> str:
    if _is_zip(path, None):
        return "mailchimp"
    if mailchimp_kind(path.name, []) is not None:
        return "mailchimp"
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        header = next(csv.reader([fh.readline()]), [])
    mailchimp_columns = {"LEID", "EUID", "OPTIN_TIME", "UNSUB_TIME", "CLEAN_TIME"}
    return "mailchimp" if "Email Address" in header and mailchimp_columns & set(header) else "csv"


def _looks_like_zip(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError as exc:
        raise ImportFileError(f"cannot read: {exc.strerror}", path=path) from None


def _is_zip(path: Path, fmt: str | None) -> bool:
    """Whether ``path`` is a readable zip. A zip that is damaged, or a file only named .zip
    (unless --format csv says so), is refused: read as a CSV, its error would quote its
    first bytes as the file's column names."""
    if zipfile.is_zipfile(path):
        return True
    if _looks_like_zip(path):
        raise ImportFileError("damaged or incomplete zip file (download the export again)", path=path)
    if path.suffix.lower() == ".zip" and fmt != "csv":
        raise ImportFileError("not a zip file (download the Mailchimp export again; "
                              "a CSV named .zip needs --format csv)", path=path)
    return False


def read_rows(path: str | Path, fmt: str | None = None) -> Iterator[Row]:
    """Rows of ``path`` (format: csv, mailchimp, or None to detect)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError("no such file", path=path)
    zipped = _is_zip(path, fmt)
    fmt = fmt or ("mailchimp" if zipped else detect_format(path))
    if fmt not in ("csv", "mailchimp"):
        raise ImportFileError(f"unknown import format {fmt!r}: use csv or mailchimp", path=path)
    if fmt == "mailchimp" and zipped:
        yield from _zip_rows(path)
        return
    try:
        with path.open("rb") as binary:
            reader = mailchimp_rows if fmt == "mailchimp" else plain_rows
            yield from reader(_text(binary, str(path)), str(path))
    except OSError as exc:
        raise ImportFileError(f"cannot read: {exc.strerror}", path=path) from None
