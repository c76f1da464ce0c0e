"""CLI commands: serve (the unsubscribe / subscribe / SES-webhook web app)."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default=None, help="Bind address (default: [web] host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: [web] port).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes.")
@click.option("--forwarded-allow-ips", default=None, metavar="IPS",
              help="Behind a reverse proxy: its address(es), comma-separated; X-Forwarded-For from them "
                   "gives the client address (used by the subscribe rate limit).")
@click.pass_obj
def serve(ctx, host: str | None, port: int | None, workers: int, forwarded_allow_ips: str | None) -> None:
    """Serve the web app (unsubscribe, subscribe, /webhooks/ses) with uvicorn."""
    import uvicorn

    from mailer.config import mask
    from mailer.web import create_app
    from mailer.web.startup import check_can_serve

    settings = ctx.settings
    host = host or settings.web.host
    check_can_serve(settings, bind_host=host)
    # Fail now, with one line, if the database is unreachable or not upgraded.
    ctx.store().close()
    port = settings.web.port if port is None else port
    click.echo(f"serving on http://{host}:{port} (public URL {mask(settings.web.base_url)})", err=True)
    # Without a trusted proxy, X-Forwarded-For is ignored: anyone could forge it.
    proxy = {"proxy_headers": bool(forwarded_allow_ips), "forwarded_allow_ips": forwarded_allow_ips or None}
    if workers > 1:
        # Each worker process builds its own app from the same config.
        import os

        if settings.config_path:
            os.environ["TWIR_MAIL_CONFIG"] = str(settings.config_path)
        uvicorn.run("mailer.web:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", log_config=_log_config(), **proxy)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", log_config=_log_config(),
                    **proxy)


def _log_config() -> dict:
    """uvicorn's logging plus the app's own lines (one per request, warnings) on stderr.

    Given to uvicorn rather than set up here, so every `--workers` process applies it too.
    uvicorn's access log stays off: it would log client addresses and token URLs."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["twir_mail"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["twir_mail"] = {"formatter": "twir_mail", "class": "logging.StreamHandler",
                                       "stream": "ext://sys.stderr"}
    config["loggers"]["twir_mail"] = {"handlers": ["twir_mail"], "level": "INFO", "propagate": False}
    return config


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(serve)
