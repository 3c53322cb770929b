"""API Analytics server: the Flask app factory."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask
from werkzeug.routing import IntegerConverter

from server.config import Config, use_config

log = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


class BoundedInt(IntegerConverter):
    """<int:...> limited to what a database integer can hold."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=2**63 - 1, signed=False):  # noqa: A002
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def create_app(config: Config | None = None) -> Flask:
    """Build the web app: JSON API, operators' pages and CLI, bound to `config`'s database
    and queue. The dashboard and the embedded jobs are mounted by the composition root
    (wsgi.py), which this package never imports."""
    import server.jobs  # noqa: F401  (declares every job to the queue)
    from server.admin import init_admin
    from server.api import init_api
    from server.cli import init_cli
    from server.csrf import init_same_origin
    from server.db import init_engine
    from server.ingest.geo import init_geo
    from server.lake.agents import warm
    from server.queue import init_queue
    from server.ratelimit import init_limiter
    from server.runtime.startup import announce

    config = use_config(config or Config.from_env())
    configure_logging(config.LOG_LEVEL)
    app = Flask(__name__)
    app.config.update(
        SETTINGS=config,
        SECRET_KEY=config.SECRET_KEY,
        TESTING=config.TESTING,
        # One byte over: a chunked body past MAX_BODY then reads as MAX_BODY + 1 bytes and
        # is refused by name (server.api.ingest), instead of being cut short silently.
        MAX_CONTENT_LENGTH=config.MAX_BODY + 1,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.production,
        # The cookie lives as long as its session may (server.keys.sessions ends it sooner).
        PERMANENT_SESSION_LIFETIME=timedelta(days=config.SESSION_MAX_DAYS),
    )
    # Ids in URLs past 64 bits can name no row; answer 404 instead of overflowing SQLite.
    app.url_map.converters["int"] = BoundedInt
    if config.TRUST_PROXY:
        # Each proxy appends to X-Forwarded-*; trust exactly as many entries as there are
        # proxies of ours, so a client cannot forge its address, scheme or host.
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = config.TRUST_PROXY
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)
    init_engine(config.DATABASE_URL)
    app.extensions["job_queue"] = init_queue(config.REDIS_URL)
    init_limiter(app, config)
    init_same_origin(app)
    init_api(app)
    init_cli(app)
    init_admin(app)
    announce(config)
    # The web enriches the batches it is sent (server.ingest): the country database is
    # opened once per process, like a worker's.
    init_geo(config.GEOIP_DB)
    warm()
    return app


def serving() -> bool:
    """Not a `flask` command other than `flask run` (a migration, `batches list`): those
    build the app to use it once, and must not start the background jobs."""
    import click

    context = click.get_current_context(silent=True)
    return context is None or context.info_name == "run"
