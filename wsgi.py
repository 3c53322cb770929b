"""The composition root: the app factory's web app, the dashboard mounted on it, and, in
the embedded mode, the background jobs started inside it. `gunicorn wsgi:app`,
`flask --app wsgi ...`.

`server` knows neither the dashboard nor the worker process; they meet here.
"""

from __future__ import annotations

from dash_app import init_dash
from server import create_app, queue, serving
from server.config import Config
from server.ingest.sweep import recover
from worker.scheduler import start_in_process


def build(config: Config | None = None):
    """The whole web app for `config` (default: from the environment)."""
    app = create_app(config)
    init_dash(app)
    settings = app.config["SETTINGS"]
    if settings.embedded_queue and not settings.TESTING and serving():
        queue.enqueue(recover)  # batches a previous process left behind
        start_in_process(settings)
    return app


def __getattr__(name: str):
    """`app`, built on first use: importing this module (tests import `build`) must not
    build an app from the environment as a side effect."""
    if name == "app":
        globals()["app"] = built = build()
        return built
    raise AttributeError(name)
