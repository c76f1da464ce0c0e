"""`twir-mail subscribers ...` and `twir-mail db ...` as a user runs them (subprocesses)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

MAILCHIMP = Path(__file__).parent / "data" / "mailchimp"


@pytest.fixture
def cli_db(run_cli, store_url):
    """run_cli against `store_url`, migrated with `db upgrade`."""
    env = {"TWIR_MAIL_DATABASE_URL": store_url}

    def run(*args, **kw):
        return run_cli(*args, env=env, **kw)

    r = run("db", "upgrade")
    assert r.code == 0 and "database upgraded: empty -> " in r.out, r.err
    return run


def one_line_error(r, code: int = 1) -> str:
    assert r.code == code, (r.out, r.err)
    # Without a config the first command also notes where it created the database.
    lines = [line for line in r.err.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.err, r.err
    return lines[0]


def test_add_remove_show_count_list_export(cli_db, workdir):
    r = cli_db("subscribers", "add", "Ann@Example.com", "bob@example.com", "--name", "Reader")
    assert r.code == 0 and r.out.splitlines() == ["added Ann@Example.com (subscribed, list main)",
                                                  "added bob@example.com (subscribed, list main)"]
    assert cli_db("subscribers", "add", "ed@example.com", "--list", "preview").code == 0
    r = cli_db("subscribers", "remove", "BOB@example.com", "--reason", "asked by mail")
    assert r.out == "unsubscribed bob@example.com\n"
    r = cli_db("subscribers", "add", "bob@example.com")
    assert "unsubscribed, kept suppressed" in r.out
    r = cli_db("subscribers", "show", "bob@example.com")
    assert "status:  unsubscribed" in r.out and "lists:   main" in r.out
    assert "subscribed -> unsubscribed  [cli] (asked by mail)" in r.out
    r = cli_db("subscribers", "count")
    assert "subscribed            2" in r.out and "unsubscribed          1" in r.out and "total                 3" in r.out
    assert "subscribed            1" in cli_db("subscribers", "count", "--list", "preview").out
    r = cli_db("subscribers", "list", "--status", "subscribed")
    assert r.out.splitlines() == ["Ann@Example.com\tsubscribed\tReader", "ed@example.com\tsubscribed\t"]
    r = cli_db("subscribers", "export", "--list", "main", "-o", "out.csv")
    assert r.code == 0 and "exported 2 subscribers to out.csv" in r.err
    rows = list(csv.DictReader((workdir / "out.csv").open()))
    assert [(x["email"], x["status"], x["name"]) for x in rows] == [
        ("Ann@Example.com", "subscribed", "Reader"), ("bob@example.com", "unsubscribed", "Reader")]
    r = cli_db("subscribers", "export", "--status", "unsubscribed")
    assert list(csv.reader(io.StringIO(r.out)))[1][:3] == ["bob@example.com", "Reader", "unsubscribed"]
    # An export imports back as it was (the unsubscribed row stays unsubscribed).
    r = cli_db("subscribers", "import", "out.csv", "--list", "preview")
    assert r.out.strip() == "2 rows: 0 added, 0 changed, 2 unchanged, 0 kept suppressed, 0 skipped"


def test_resubscribe_needs_reason_and_is_logged(cli_db):
    cli_db("subscribers", "add", "x@example.com")
    cli_db("subscribers", "remove", "x@example.com")
    r = cli_db("subscribers", "add", "x@example.com", "--resubscribe")
    assert "--resubscribe needs --reason" in one_line_error(r, 2)
    for reason, why in (("line one\nline two", "must be one line"), ("x" * 501, "longer than 500 characters")):
        r = cli_db("subscribers", "add", "x@example.com", "--resubscribe", "--reason", reason)
        assert why in one_line_error(r, 2)
        assert why in one_line_error(cli_db("subscribers", "remove", "x@example.com", "--reason", reason), 2)
    r = cli_db("subscribers", "add", "x@example.com", "--resubscribe", "--reason", "wrote to the editors")
    assert r.code == 0 and "subscribed (was unsubscribed)" in r.out
    assert "unsubscribed -> subscribed  [resubscribe] (wrote to the editors)" in cli_db(
        "subscribers", "show", "x@example.com").out


def test_forget_keeps_address_suppressed(cli_db):
    cli_db("subscribers", "add", "private@example.com", "--name", "Private Person")
    r = cli_db("subscribers", "forget", "Private@Example.com")
    assert r.code == 0 and "personal data erased" in r.out
    r = cli_db("subscribers", "add", "private@example.com")
    assert "forgotten earlier, stays suppressed" in r.out
    show = cli_db("subscribers", "show", "private@example.com").out
    assert "email:   (forgotten)" in show and "Private Person" not in show and "private@" not in show
    assert cli_db("subscribers", "list").out == ""
    assert "already forgotten" in cli_db("subscribers", "forget", "private@example.com").out
    # The count says where the forgotten row went: not among the statuses, on a line of its own.
    lines = cli_db("subscribers", "count").out.splitlines()
    assert "total                 0" in lines
    assert lines[-1].startswith("forgotten             1  (not in the total: erased by `subscribers forget`")


def test_mailchimp_zip_import_reports_bad_rows(cli_db, workdir):
    zipped = shutil.make_archive(str(workdir / "members_export"), "zip", MAILCHIMP)
    r = cli_db("subscribers", "import", zipped)
    assert r.code == 0, r.err
    assert r.out.strip() == "17 rows: 13 added, 1 changed, 0 unchanged, 0 kept suppressed, 3 skipped"
    bad = r.err.strip().splitlines()
    assert [line.split(": ")[0].rsplit("/", 1)[1] for line in bad] == [  # :4 is zoë@ (no SMTPUTF8 at SES)
        "subscribed_members_export_3f9a1c2b7d.csv:4", "subscribed_members_export_3f9a1c2b7d.csv:8",
        "subscribed_members_export_3f9a1c2b7d.csv:12"]
    r = cli_db("subscribers", "import", zipped, "--format", "mailchimp")
    assert "0 added, 0 changed" in r.out
    r = cli_db("subscribers", "count")
    assert "subscribed            7" in r.out and "bounced               3" in r.out


@pytest.mark.parametrize("args, message", [
    (["subscribers", "add", "not-an-address"], "error: invalid address 'not-an-address': "),
    (["subscribers", "add", "a@example.com", "--list", "nope"], "error: unknown list 'nope'"),
    (["subscribers", "remove", "nobody@example.com"], "error: not a subscriber: nobody@example.com"),
    (["subscribers", "show", "nobody@example.com"], "error: not a subscriber: nobody@example.com"),
    (["subscribers", "forget", "nobody@example.com"], "error: not a subscriber: nobody@example.com"),
    (["subscribers", "import", "missing.csv"], "error: missing.csv: no such file"),
])
def test_errors_are_one_line(run_cli, args, message):
    assert one_line_error(run_cli(*args)).startswith(message)


@pytest.mark.parametrize("args, message", [
    (["subscribers", "ad"], "error: No such command 'ad'. Did you mean 'add'? (see 'twir-mail subscribers --help')"),
    (["render", "--bogus"], "error: No such option '--bogus'. (see 'twir-mail render --help')"),
    (["render"], "error: Missing argument 'FILES...'. (see 'twir-mail render --help')"),
    (["subscribers", "add", "a@example.com", "--resubscribe"], "error: --resubscribe needs --reason"),
])
def test_usage_errors_are_one_line_with_where_to_look(run_cli, args, message):
    assert one_line_error(run_cli(*args), 2).startswith(message)


def test_a_group_without_a_command_shows_its_help(run_cli):
    r = run_cli("subscribers")
    assert "Commands:" in r.out + r.err and "import" in r.out + r.err


def test_export_of_an_unknown_list_prints_no_csv(run_cli):
    r = run_cli("subscribers", "export", "--list", "mian")
    assert one_line_error(r).startswith("error: unknown list 'mian'") and r.out == ""


def test_export_to_a_missing_folder_is_one_line(run_cli):
    assert one_line_error(run_cli("subscribers", "export", "-o", "nope/out.csv")) == (
        "error: nope/out.csv: cannot write export: No such file or directory")


def test_import_file_errors_name_file_and_line(run_cli, workdir):
    (workdir / "in.csv").write_text("address\nx@example.com\n")
    assert one_line_error(run_cli("subscribers", "import", "in.csv")) == (
        "error: in.csv:1: no `email` column (columns: address)")
    (workdir / "bad.csv").write_bytes(b"email\nx@example.com\ny@exam\xffple.com\n")
    assert one_line_error(run_cli("subscribers", "import", "bad.csv")) == "error: bad.csv:3: not UTF-8 text"


def test_a_zip_that_is_not_one_says_so(run_cli, workdir):
    # Read as a CSV it was "no `email` column (columns: <its first bytes>)".
    (workdir / "audience.zip").write_bytes(b"<html>Sign in to Mailchimp</html>\n")
    assert one_line_error(run_cli("subscribers", "import", "audience.zip")) == (
        "error: audience.zip: not a zip file (download the Mailchimp export again; "
        "a CSV named .zip needs --format csv)")
    (workdir / "list.zip").write_text("email\nx@example.com\n")  # said to be a CSV: imported as one
    r = run_cli("subscribers", "import", "list.zip", "--format", "csv")
    assert r.code == 0 and "1 added" in r.out, r.err


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)  # SQLite upgrades itself
def test_postgres_needs_db_upgrade(run_cli, store_url):
    env = {"TWIR_MAIL_DATABASE_URL": store_url}
    r = run_cli("subscribers", "count", env=env)
    assert one_line_error(r) == "error: database is not up to date: run `twir-mail db upgrade`"
    assert "behind" in run_cli("db", "current", env=env).out
    assert run_cli("db", "upgrade", env=env).code == 0
    assert "up to date" in run_cli("db", "current", env=env).out
    assert "already at" in run_cli("db", "upgrade", env=env).out


def test_unreachable_database_is_one_line(run_cli):
    r = run_cli("subscribers", "count", env={"TWIR_MAIL_DATABASE_URL": "postgresql://x@127.0.0.1:1/none"})
    assert "cannot open database postgresql://x@127.0.0.1:1/none" in one_line_error(r)


def test_export_reimports_losslessly_into_another_database(cli_db, run_cli, workdir):
    """Moving the list (e.g. SQLite -> PostgreSQL) with export + import keeps every exported column."""
    workdir.joinpath("in.csv").write_text(
        "email,name,status\nZoe@Exämple.org,\"Zoë \"\"Z\"\", Ü\",subscribed\nP@x.org,,pending\n"
        "b@x.org,B,bounced\nc@x.org,C,complained\nu@x.org,\"a,b\",unsubscribed\n", encoding="utf-8")
    assert cli_db("subscribers", "import", "in.csv").code == 0
    assert cli_db("subscribers", "add", "Ed@x.org", "--name", "Ed").code == 0
    assert cli_db("subscribers", "export", "-o", "first.csv").code == 0
    other = {"TWIR_MAIL_DATABASE_URL": f"sqlite:///{workdir / 'other.db'}"}
    r = run_cli("subscribers", "import", "first.csv", env=other)
    assert r.out.strip() == "6 rows: 6 added, 0 changed, 0 unchanged, 0 kept suppressed, 0 skipped", r.err
    assert run_cli("subscribers", "export", "-o", "second.csv", env=other).code == 0

    def rows(name):  # updated_at is when this database last changed the row: not carried over
        return sorted(tuple(r.values())[:-1] for r in csv.DictReader((workdir / name).open(encoding="utf-8")))

    assert rows("first.csv") == rows("second.csv")
    assert len(rows("first.csv")) == 6 and ("Ed@x.org", "Ed", "subscribed", "cli") == rows("first.csv")[0][:4]


def test_list_is_one_line_per_subscriber_whatever_the_name(cli_db, workdir):
    workdir.joinpath("in.csv").write_text('name,email\n"Multi\nline\tname",h@x.org\nPlain,p@x.org\n')
    assert cli_db("subscribers", "import", "in.csv").code == 0
    r = cli_db("subscribers", "list")
    assert sorted(r.out.splitlines()) == ["h@x.org\tsubscribed\tMulti line name", "p@x.org\tsubscribed\tPlain"]


def test_remove_keeps_a_bounce_or_complaint(cli_db, workdir):
    (workdir / "in.csv").write_text("email,name,status\nbounced@example.com,,bounced\n"
                                    "complained@example.com,,complained\n")
    assert cli_db("subscribers", "import", "in.csv").code == 0
    for address, status in (("bounced@example.com", "bounced"), ("complained@example.com", "complained")):
        r = cli_db("subscribers", "remove", address)
        assert r.code == 0 and r.out == f"{address}: already suppressed ({status})\n"
        assert f"status:  {status}" in cli_db("subscribers", "show", address).out
