"""``ie-web``: serve the web pages with uvicorn on ``web.listen``."""

from __future__ import annotations

import logging
import sys

import click
import uvicorn

from ie_core import IeError, create_app
from ie_core.config import parse_hostport
from ie_core.db import migrate

from .app import create_web_app

log = logging.getLogger("ie.web")


@click.command("ie-web")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="configuration file (default: IE_CONFIG or /etc/ie/ie.toml)")
@click.option("--listen", help="HOST:PORT to listen on (default: web.listen)")
def main(config_path: str | None, listen: str | None) -> None:
    """Serve ie's web pages (behind a reverse proxy: docs/web.md)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        app = create_app(config_path)
        address = listen or app.config.get("web.listen")
        if not address:
            raise IeError("web.listen is empty: ie-web is switched off")
        host, port = parse_hostport(address, "--listen" if listen else "web.listen")
        migrate.check(app.db, hooks=app.hooks)
        web = create_web_app(app)
    except IeError as err:
        click.echo(f"ie-web: error: {' '.join(str(err).split())}", err=True)
        sys.exit(2)
    log.info("event=web_start listen=%s:%s", host, port)
    try:
        uvicorn.run(web, host=host, port=port, proxy_headers=True, forwarded_allow_ips="127.0.0.1",
                    log_level="warning", access_log=False, server_header=False)
    finally:
        app.close()
