"""Importer: plain CSV and a Mailchimp audience export (tests/data/mailchimp), both dialects."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailer.errors import ImportFileError
from mailer.models import Status
from mailer.store.importer import import_file
from mailer.store.schema import history, list_members, subscribers

MAILCHIMP = Path(__file__).parent / "data" / "mailchimp"
EXPECTED = {
    "ferris@rustacean.net": Status.BOUNCED,  # subscribed, then cleaned: leaving wins
    "jane.doe@example.com": Status.SUBSCRIBED,
    "o'brien@example.ie": Status.SUBSCRIBED,
    "dev+twir@example.com": Status.SUBSCRIBED,
    "mixed.case@sub.example.com": Status.SUBSCRIBED,
    "user@xn--bcher-kva.de": Status.SUBSCRIBED,
    "reader@example.net": Status.SUBSCRIBED,
    "trailing.space@example.com": Status.SUBSCRIBED,
    "left@example.com": Status.UNSUBSCRIBED,
    "moved.on@example.org": Status.UNSUBSCRIBED,
    "spam.report@example.net": Status.UNSUBSCRIBED,
    "bounced@example.com": Status.BOUNCED,
    "gone@defunct-isp.example": Status.BOUNCED,
}


def mailchimp_zip(tmp_path: Path) -> Path:
    target = tmp_path / "members_export_3f9a1c2b7d.zip"
    with zipfile.ZipFile(target, "w") as zf:
        for csv_file in sorted(MAILCHIMP.glob("*.csv"), reverse=True):  # order inside must not matter
            zf.write(csv_file, csv_file.name)
    return target


def statuses(store) -> dict[str, Status]:
    return {s.email_norm: s.status for s in store.iter_subscribers()}


def table_sizes(store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                     for t in (subscribers, history, list_members))


def test_mailchimp_zip_round_trips_statuses(store, tmp_path):
    bad: list[str] = []
    report = import_file(store, mailchimp_zip(tmp_path), on_bad=bad.append)
    assert statuses(store) == EXPECTED
    assert report.rows == 17 and report.bad == 3 and report.added == 13 and report.changed == 1
    where = f"{tmp_path}/members_export_3f9a1c2b7d.zip/subscribed_members_export_3f9a1c2b7d.csv"
    # zoë@: SES cannot deliver to a non-ASCII local part (issue 11), so it is a bad row, not a subscriber.
    assert [m.split(": ", 2)[:2] for m in bad] == [[f"{where}:4", "zoë@example.org"],
                                                   [f"{where}:8", "invalid address 'not-an-address'"],
                                                   [f"{where}:12", "invalid address 'double@@example.com'"]]
    assert all("\n" not in m for m in bad)
    assert store.count() == {"pending": 0, "subscribed": 7, "unsubscribed": 3, "bounced": 3, "complained": 0}
    sub = store.get("mixed.case@sub.example.com")
    assert (sub.email, sub.name, sub.source) == ("MiXeD.Case@Sub.Example.COM", "Mixed, Jr. Case", "mailchimp")
    assert store.get("zoë@example.org") is None
    moved = store.history(store.get("moved.on@example.org").id)
    assert moved[0].reason == "import" and "UNSUB_CAMPAIGN_TITLE=This Week in Rust 512" in moved[0].detail
    ferris = store.history(store.get("ferris@rustacean.net").id)
    assert [(h.old_status, h.new_status) for h in ferris] == [(None, Status.SUBSCRIBED),
                                                              (Status.SUBSCRIBED, Status.BOUNCED)]
    assert "CLEAN_CAMPAIGN_TITLE=This Week in Rust 341" in ferris[1].detail


def test_mailchimp_csv_files_one_by_one_and_twice_changes_nothing(store):
    files = sorted(MAILCHIMP.glob("*.csv"))  # cleaned, subscribed, unsubscribed: cleaned first this time
    for csv_file in files:
        import_file(store, csv_file)  # detected as mailchimp from the file name
    assert statuses(store) == EXPECTED
    sizes = table_sizes(store)
    for csv_file in files:
        report = import_file(store, csv_file, fmt="mailchimp")
        assert report.added == report.changed == 0
    assert table_sizes(store) == sizes


def test_import_never_resubscribes(store):
    for email, status in [("left@example.com", Status.UNSUBSCRIBED), ("bounced@example.com", Status.COMPLAINED)]:
        sub = store.add(email)
        store.set_status(sub.id, status, reason="unsubscribe-link")
    store.add("ferris@rustacean.net")
    store.forget("ferris@rustacean.net")
    report = import_file(store, MAILCHIMP / "subscribed_members_export_3f9a1c2b7d.csv")
    assert report.kept_suppressed == 1  # ferris (forgotten) is in the subscribed file
    assert store.get("ferris@rustacean.net").email is None
    report = import_file(store, MAILCHIMP / "cleaned_members_export_3f9a1c2b7d.csv")
    assert store.get("bounced@example.com").status is Status.COMPLAINED  # keeps its first suppression
    assert "ferris@rustacean.net" not in statuses(store)


def test_plain_csv_columns_bad_rows_and_lists(store, tmp_path):
    src = tmp_path / "people.csv"
    src.write_text("Name,EMAIL,Status\n"
                   "Ann,ann@example.com,\n"
                   "\n"
                   'Bob "B",bob@example.com,pending\n'
                   "Cy,,subscribed\n"
                   "Dee,dee@example.com,gone\n"
                   "Eve,eve@example.com,unsubscribed\n"
                   "Ann again,ANN@example.com,\n", encoding="utf-8")
    bad: list[str] = []
    report = import_file(store, src, list_name="preview", on_bad=bad.append)
    assert bad == [f"{src}:5: no address", f"{src}:6: unknown status 'gone'"]
    assert statuses(store) == {"ann@example.com": Status.SUBSCRIBED, "bob@example.com": Status.PENDING,
                               "eve@example.com": Status.UNSUBSCRIBED}
    assert store.get("ann@example.com").name == "Ann"  # an import fills names, never overwrites them
    assert store.count("preview")["subscribed"] == 1 and store.count("main")["subscribed"] == 0
    assert report.summary() == "6 rows: 3 added, 0 changed, 1 unchanged, 0 kept suppressed, 2 skipped"
    store.add("nameless@example.com", list_name="preview")
    src.write_text("email,name\nnameless@example.com,Now Named\nann@example.com,Other\n")
    assert import_file(store, src, list_name="preview").unchanged == 2
    assert (store.get("nameless@example.com").name, store.get("ann@example.com").name) == ("Now Named", "Ann")
    assert [h.reason for h in store.history(store.get("nameless@example.com").id)] == ["cli"]  # not a status change


def test_crash_mid_import_leaves_whole_batches_only(store, tmp_path):
    src = tmp_path / "big.csv"
    src.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(250)) + "\xff\n",
                   encoding="latin-1")
    with pytest.raises(ImportFileError, match=r"big.csv:252: not UTF-8 text"):
        import_file(store, src, batch_size=100)
    assert sum(store.count().values()) == 200  # two whole batches, not the 50 rows of the third
    src.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(250)), encoding="utf-8")
    report = import_file(store, src, batch_size=100)  # rerun after the crash: completes it
    assert (report.added, report.unchanged) == (50, 200)
    assert table_sizes(store) == (250, 250, 250)


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("mail,name\nx@example.com,X\n", "no `email` column (columns: mail, name)"),
])
def test_unusable_files_are_one_line_errors(store, tmp_path, content, message):
    src = tmp_path / "in.csv"
    src.write_text(content)
    with pytest.raises(ImportFileError, match=re.escape(message)) as info:
        import_file(store, src)
    assert str(info.value).startswith(f"{src}:1: ")


def test_mailchimp_files_need_their_columns(store, tmp_path):
    bad = tmp_path / "subscribed_x.csv"
    bad.write_text("email\nx@example.com\n")
    with pytest.raises(ImportFileError, match="no `Email Address` column .*needs --format csv"):
        import_file(store, bad)
    assert import_file(store, bad, fmt="csv").added == 1
    other = tmp_path / "audience.csv"
    other.write_text("Email Address,Favourite crate\nx@example.com,serde\n")
    with pytest.raises(ImportFileError, match="not a Mailchimp export file"):
        import_file(store, other, fmt="mailchimp")
    renamed = tmp_path / "audience-2024.csv"  # no telling name: the columns say "cleaned"
    renamed.write_bytes((MAILCHIMP / "cleaned_members_export_3f9a1c2b7d.csv").read_bytes())
    import_file(store, renamed, fmt="mailchimp")
    assert store.get("gone@defunct-isp.example").status is Status.BOUNCED


@pytest.mark.parametrize("content", [
    "E-mail Address,First Name,Last Name\nann@example.com,Ann,Lee\n",  # Outlook/Thunderbird spelling
    "EmailAddress,Name\nann@example.com,Ann Lee\n",
    "email;name\nann@example.com;Ann Lee\n",  # European Excel: semicolons
    "Name\tEmail\nAnn Lee\tann@example.com\n",  # tab-separated
    '\ufeff"E-Mail";"Name"\r\n\r\n"ann@example.com";"Ann Lee"\r\n',
])
def test_plain_csv_header_spellings_and_delimiters(store, tmp_path, content):
    src = tmp_path / "people.csv"
    src.write_text(content, encoding="utf-8")
    assert import_file(store, src).added == 1
    assert (store.get("ann@example.com").email, store.get("ann@example.com").name) == ("ann@example.com", "Ann Lee")


def test_mailchimp_leavers_never_import_as_subscribed(store, tmp_path):
    unsub = (MAILCHIMP / "unsubscribed_members_export_3f9a1c2b7d.csv").read_text(encoding="utf-8")
    forced = tmp_path / "unsubscribed_members_export_3f9a1c2b7d.csv"
    forced.write_text(unsub, encoding="utf-8")
    with pytest.raises(ImportFileError, match=r":1: this is a Mailchimp unsubscribed export: .*--format mailchimp"):
        import_file(store, forced, fmt="csv")  # as a plain CSV everyone would be `subscribed`
    # Renamed and without the LEID/EUID columns, the UNSUB_TIME column still says what it is.
    header, *rows = unsub.splitlines()
    keep = [i for i, h in enumerate(header.split(",")) if h not in ("LEID", "EUID")]
    renamed = tmp_path / "audience.csv"
    renamed.write_text("\n".join(",".join(r.split(",")[i] for i in keep) for r in [header, rows[0]]) + "\n")
    import_file(store, renamed)
    assert store.get("left@example.com").status is Status.UNSUBSCRIBED
    assert sum(store.count().values()) == 1


def test_damaged_zip_is_a_one_line_error(store, tmp_path):
    good = mailchimp_zip(tmp_path).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ImportFileError, match="damaged or incomplete zip file"):
        import_file(store, truncated)
    corrupt = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(corrupt, "w", compression=zipfile.ZIP_DEFLATED) as zf:  # as Mailchimp's are
        for csv_file in sorted(MAILCHIMP.glob("*.csv")):
            zf.write(csv_file, csv_file.name)
        info = zf.getinfo("subscribed_members_export_3f9a1c2b7d.csv")
    data = bytearray(corrupt.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 40
    data[start:start + 20] = bytes(b ^ 0xFF for b in data[start:start + 20])  # inside the deflated data
    corrupt.write_bytes(data)
    with pytest.raises(ImportFileError, match=r"corrupt.zip/subscribed_members_export_3f9a1c2b7d.csv: "
                                              r"cannot read this zip member"):
        import_file(store, corrupt)
    assert sum(store.count().values()) == 0


def test_export_columns_source_and_created_at_are_kept_for_new_rows(store, tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("email,name,status,source,created_at,updated_at\n"
                   "a@example.com,A,subscribed,web,2021-03-04T05:06:07+00:00,2024-01-01T00:00:00+00:00\n"
                   "b@example.com,B,subscribed,cli,last tuesday,\n"
                   "c@example.com,C,pending,,2022-01-01 10:00:00,\n")
    bad: list[str] = []
    import_file(store, src, on_bad=bad.append)
    assert bad == [f"{src}:3: created_at is not an ISO 8601 date: 'last tuesday'"]
    a, c = store.get("a@example.com"), store.get("c@example.com")
    assert (a.source, a.created_at.isoformat()) == ("web", "2021-03-04T05:06:07+00:00")
    assert (c.source, c.created_at.isoformat()) == ("import", "2022-01-01T10:00:00+00:00")


def test_add_and_import_share_one_rule_and_keep_their_name_behaviour(store, tmp_path):
    """`add` and `import` decide through the same function (writes.update_for); only the name
    policy differs, on purpose: `add` says who the reader is now, an old export only fills a gap."""
    store.add("ann@example.com", name="Ann Old")
    store.add("ann@example.com", name="Ann New")
    store.add("nameless@example.com")
    store.add("left@example.com", name="Lee")
    store.set_status(store.get("left@example.com").id, Status.UNSUBSCRIBED, reason="unsubscribe-link")
    store.add("gone@example.com")
    store.forget("gone@example.com")
    src = tmp_path / "export.csv"
    src.write_text("email,name,status\nann@example.com,Stale Export,subscribed\n"
                   "nameless@example.com,Found Later,subscribed\nleft@example.com,Lee Again,subscribed\n"
                   "gone@example.com,Ghost,subscribed\n", encoding="utf-8")
    report = import_file(store, src)
    assert (report.changed, report.kept_suppressed) == (0, 2)
    assert store.get("ann@example.com").name == "Ann New"  # import: never overwrites a name
    assert store.get("nameless@example.com").name == "Found Later"  # ... but fills a missing one
    assert store.get("left@example.com").status is Status.UNSUBSCRIBED  # suppression holds for both
    assert store.add("left@example.com", name="Lee Again").status is Status.UNSUBSCRIBED
    assert store.get("left@example.com").name == "Lee Again"  # add: overwrites the name
    assert (store.get("gone@example.com").email, store.get("gone@example.com").name) == (None, None)
    assert store.add("gone@example.com").email is None  # forgotten stays forgotten without resubscribe


def test_update_for_is_the_rule():
    from types import SimpleNamespace as Row

    from mailer.store.writes import Update, update_for

    def row(status, name=None, forgotten=False):
        return Row(status=status.value, name=name, forgotten_at="2025-01-01" if forgotten else None)

    sub, pend, unsub = Status.SUBSCRIBED, Status.PENDING, Status.UNSUBSCRIBED
    for overwrite in (True, False):
        assert update_for(row(unsub), sub, None, overwrite_name=overwrite) == Update()
        assert update_for(row(unsub), sub, None, resubscribe=True, overwrite_name=overwrite) == Update(status=sub)
        assert update_for(row(sub), pend, None, overwrite_name=overwrite) == Update()  # never demoted
        assert update_for(row(pend), unsub, None, overwrite_name=overwrite) == Update(status=unsub)
        assert update_for(row(unsub, forgotten=True), sub, "X", overwrite_name=overwrite) == Update(untouched=True)
        assert update_for(row(unsub, forgotten=True), sub, "X", resubscribe=True,
                          overwrite_name=overwrite) == Update(status=sub, name="X", revive=True)
        assert update_for(row(sub), sub, "New", overwrite_name=overwrite).name == "New"  # a missing name is filled
    assert update_for(row(sub, "Old"), sub, "New", overwrite_name=True).name == "New"
    assert update_for(row(sub, "Old"), sub, "New", overwrite_name=False).name is None
    assert update_for(row(sub, "Same"), sub, "Same", overwrite_name=True) == Update()


def _subscriber_inserts(store) -> list[int]:
    seen: list[int] = []

    def count(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO subscribers"):
            seen.append(1)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    return seen


def test_repeated_addresses_do_not_cut_batches_short(store, tmp_path):
    """Issue 11: real exports repeat addresses in another case (every 250th row in the bench file).
    Each repeat used to commit the batch so far: ~10 rows a batch here instead of 100."""
    lines = []
    for i in range(300):
        lines.append(f"Reader.{i}@Example.com,subscribed")
        if i % 10 == 9:
            lines.append(f"READER.{i}@EXAMPLE.COM,unsubscribed")  # the same person, now leaving
    src = tmp_path / "messy.csv"
    src.write_text("email,status\n" + "\n".join(lines) + "\n", encoding="utf-8")
    inserts = _subscriber_inserts(store)
    report = import_file(store, src, batch_size=100)
    assert (report.added, report.changed, report.bad) == (300, 30, 0)
    assert len(inserts) == 4  # 330 rows in batches of 100, not 30 batches cut at each repeat
    # Applied in file order, exactly as one row at a time would: joined, then left.
    leaver = store.get("reader.9@example.com")
    assert leaver.status is Status.UNSUBSCRIBED
    assert [(h.old_status, h.new_status) for h in store.history(leaver.id)] == [
        (None, Status.SUBSCRIBED), (Status.SUBSCRIBED, Status.UNSUBSCRIBED)]
    assert store.count()["subscribed"] == 270
    again = import_file(store, src, batch_size=100)
    assert (again.added, again.changed) == (0, 0)


def test_import_gives_postgresql_statistics_as_the_table_grows(store, tmp_path):
    """With autovacuum off (and in a fresh database's first minute) nothing else analyzes the tables:
    the lookups would keep plans made for an empty table."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite plans from its indexes")
    src = tmp_path / "grow.csv"
    src.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(500)), encoding="utf-8")
    import_file(store, src, batch_size=100)
    with store.transaction(write=False) as conn:
        analyzed = conn.exec_driver_sql(
            "SELECT relname, reltuples FROM pg_class WHERE relname IN ('subscribers', 'list_members') "
            "AND relnamespace = current_schema()::regnamespace").all()
    assert {name: n >= 400 for name, n in analyzed} == {"subscribers": True, "list_members": True}


def test_postgresql_import_statements_do_not_grow_with_the_batch(store, tmp_path):
    """Every statement of a PostgreSQL import has the same text whatever the batch holds (arrays,
    not a placeholder per row or per value), so psycopg parses each once: lists of 16,000
    placeholders parsed anew per batch were a third of the import's time (bench/import.py)."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite parses multi-row statements cheaply")
    texts: set[str] = set()
    sa.event.listen(store.engine, "before_cursor_execute", lambda conn, cur, statement, *a: texts.add(statement))
    rows = [f"reader.{i}@example.com" if i % 7 else f"broken {i}" for i in range(250)]  # batches of uneven size
    src = tmp_path / "uneven.csv"
    src.write_text("email,name\n" + "".join(f"{r},Reader\n" for r in rows) + "READER.1@EXAMPLE.COM,R\n",
                   encoding="utf-8")
    report = import_file(store, src, batch_size=60)
    assert report.added == 214 and report.bad == 36
    writes = {t for t in texts if not t.startswith(("ANALYZE", "BEGIN", "SAVEPOINT", "RELEASE", "SELECT pg_"))}
    assert max(len(t) for t in writes) < 2000, max(writes, key=len)[:300]
    assert len(writes) <= 8, sorted(writes)
    assert store.get("reader.1@example.com").name == "Reader"
