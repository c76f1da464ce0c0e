"""CLI commands: render, check, preview."""

from __future__ import annotations

from pathlib import Path

import click

from mailer.atomicfile import write_files
from mailer.cli import err, pass_ctx
from mailer.errors import TwirMailError


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def _write_all(files: dict[Path, str | bytes]) -> None:
    """Write every file or none (see mailer/atomicfile.py)."""
    try:
        write_files(files)
    except OSError as exc:
        raise TwirMailError(f"cannot write: {exc.strerror}", path=exc.filename) from None


def render_one(file: str, out_dir: Path, settings) -> str:
    """Render one issue into out_dir; returns the line to print."""
    from mailer.issue.parse import parse_issue
    from mailer.sending.message import MessageTemplate
    from mailer.issue.render import render_issue

    rendered = render_issue(parse_issue(file), settings)
    stem = rendered.issue.stem
    sample = MessageTemplate(rendered, settings).sample()
    _write_all({out_dir / f"{stem}.html": rendered.html, out_dir / f"{stem}.txt": rendered.text,
                out_dir / f"{stem}.eml": sample})
    return (f"{file} -> {out_dir / stem}.html ({_kib(rendered.html_bytes)} HTML, "
            f"{_kib(rendered.text_bytes)} text, .eml sample)")


def _same_output(written: dict[str, tuple[str, Path]], file: str) -> tuple[str, Path]:
    """The output name (Issue.stem) and the file's real path, once no earlier issue of this run
    wrote that name: a/issue.md and b/issue.md both write issue.html, the second over the first's."""
    stem, real = Path(file).stem, Path(file).resolve()
    earlier = written.get(stem)
    if earlier and earlier[1] != real:
        raise TwirMailError(f"its {stem}.html, .txt and .eml would replace those of {earlier[0]}: "
                            "render it with another -o folder", path=file)
    return stem, real


@click.command("render")
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", "output", default="build", show_default=True, type=click.Path(file_okay=False),
              help="Folder for <stem>.html, <stem>.txt and <stem>.eml.")
@pass_ctx
def render_cmd(ctx, files: tuple[str, ...], output: str) -> int:
    """Render issues (Markdown) as HTML email, plain text and a sample .eml message."""
    settings = ctx.settings
    out_dir = Path(output)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TwirMailError(f"cannot create output folder: {exc.strerror}", path=out_dir) from None
    failed = 0
    written: dict[str, tuple[str, Path]] = {}  # output stem -> the issue rendered there in this run
    for file in files:
        try:
            stem, real = _same_output(written, file)
            click.echo(render_one(file, out_dir, settings))
            written.setdefault(stem, (file, real))
        except TwirMailError as exc:  # report it and go on with the others
            err(str(exc))
            failed += 1
    if failed:
        err(f"{failed} of {len(files)} issue(s) failed to render")
        return 1
    return 0


def _codes(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--ignore a,b --ignore c`` -> ("a", "b", "c")."""
    return tuple(code.strip() for value in values for code in value.split(",") if code.strip())


@click.command("check")
@click.argument("files", nargs=-1, required=True)
@click.option("--errors-only", is_flag=True, help="Do not print warnings.")
@click.option("--ignore", "ignore", multiple=True, metavar="CODE[,CODE]",
              help="Leave out findings with this code (the [code] at the end of each line); repeatable.")
@click.option("--links", "live_links", is_flag=True,
              help="Also fetch every link and image (cached for a week in the cache folder).")
@pass_ctx
def check_cmd(ctx, files: tuple[str, ...], errors_only: bool, ignore: tuple[str, ...], live_links: bool) -> int:
    """Lint issues before sending: errors exit 1, warnings are printed only.

    An issue silences one finding with `<!-- check: ignore CODE -->` on its line."""
    from mailer.models import Severity
    from mailer.sending.preflight import check_file

    settings = ctx.settings
    ignore = _codes(ignore)
    errors = warnings = 0
    for file in files:
        findings = check_file(file, settings, ignore=ignore)
        if live_links:
            findings = _with_live_links(file, findings, settings, ignore)
        for finding in findings:
            if finding.severity == Severity.ERROR:
                errors += 1
            else:
                warnings += 1
                if errors_only:
                    continue
            click.echo(str(finding))
    summary = f"{errors} error(s), {warnings} warning(s) in {len(files)} file(s)"
    click.echo(summary, err=True)
    return 1 if errors else 0


def _with_live_links(file, findings, settings, ignore):
    """Add the live link checker's findings (only for an issue that parses)."""
    from mailer.issue.linkcheck import check_links
    from mailer.issue.lint import silence
    from mailer.issue.parse import parse_issue

    try:
        issue = parse_issue(file)
    except TwirMailError:
        return findings  # already reported as a parse error
    live, stats = check_links(issue, settings)
    click.echo(f"{file}: {stats}", err=True)
    return silence(findings + live, issue, ignore)


@click.command("preview")
@click.argument("file")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@pass_ctx
def preview_cmd(ctx, file: str, port: int, host: str) -> int:
    """Serve a page showing FILE as desktop, mobile, dark and plain text, with the findings of
    `check` beside it, updated on save."""
    from mailer.issue.parse import parse_issue
    from mailer.issue.preview import make_server
    from mailer.sending.preflight import check_message

    parse_issue(file)  # a file that cannot even be parsed is a plain error
    server = make_server(file, ctx.settings, host=host, port=port, checker=check_message)
    real_host, real_port = server.server_address[:2]
    click.echo(f"Previewing {file} at http://{real_host}:{real_port}/ (re-renders on save; Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(render_cmd)
    cli.add_command(check_cmd)
    cli.add_command(preview_cmd)
