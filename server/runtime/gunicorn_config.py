"""gunicorn settings for `make run` and the image:
`gunicorn -c python:server.runtime.gunicorn_config`.

The access log goes to stdout through server.runtime.access_log (secrets redacted, page
plumbing left out unless ACCESS_LOG=all); the start-up notes are logged once, by the
master, instead of once by each worker it forks.
"""

from __future__ import annotations

accesslog = "-"
logger_class = "server.runtime.access_log.AccessLogger"
graceful_timeout = 10


def on_starting(_server) -> None:
    """In the master, before it forks any worker: the notes, once for the whole start."""
    import sys

    from server import configure_logging
    from server.config import Config, ConfigError
    from server.runtime.startup import announce

    try:
        config = Config.from_env()
    except ConfigError as exc:
        # One line here, rather than a traceback from every worker that fails to boot.
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(config.LOG_LEVEL)
    announce(config, for_children=True)
    from server.lake.agents import warm

    warm()  # before the fork: every worker shares the loaded parser


def post_worker_init(_worker) -> None:
    """In each worker, once the app is loaded: garbage collection tuned for ingest.

    A batch allocates thousands of short-lived objects (its rows), so collecting the
    youngest generation every 700 allocations scanned the same live rows over and over,
    and each full collection walked every object the app had loaded; together about a
    tenth of the web's CPU under ingest (bench/README.md). Objects loaded so far are
    frozen out of collection (they live as long as the process), and the youngest
    generation is collected every 50,000 allocations.
    """
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
