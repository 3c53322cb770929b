"""gunicorn settings for `make run` and the image: `gunicorn -c python:server.gunicorn_config`.

The access log goes to stdout through server.access_log (secrets redacted, page
plumbing left out unless ACCESS_LOG=all); the start-up notes are logged once, by the
master, instead of once by each worker it forks.
"""

from __future__ import annotations

accesslog = "-"
logger_class = "server.access_log.AccessLogger"
graceful_timeout = 10


def on_starting(_server) -> None:
    """In the master, before it forks any worker: the notes, once for the whole start."""
    import sys

    from server import configure_logging
    from server.config import Config, ConfigError
    from server.startup import announce

    try:
        config = Config.from_env()
    except ConfigError as exc:
        # One line here, rather than a traceback from every worker that fails to boot.
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(config.LOG_LEVEL)
    announce(config, for_children=True)
    from server.useragents import warm

    warm()  # before the fork: every worker shares the loaded parser
