"""The hello-world Flask or Django app the middleware benchmark serves under gunicorn.

BENCH_FRAMEWORK picks flask or django; BENCH_VARIANT what wraps it: bare, ours, ours_b
(the same again, for an A/A run), ours_ref (ours as it is at a git ref), ours_capture
(ours logging both sides of each exchange, bench/middleware_payload.py; POST /echo answers
its JSON back), ours_capture_ref (the same at a git ref), noop (a WSGI recorder
doing the least any analytics middleware must), noop_mw (Django: the same as a Django
middleware) or published (the `api-analytics` package's module for the framework, as its
README adds it). `bench/middleware.py` puts the right `api_analytics` first on
PYTHONPATH; this module refuses to run with the wrong one.
"""

from __future__ import annotations

import json
import os
import sys
from time import perf_counter

FRAMEWORK = os.environ.get("BENCH_FRAMEWORK", "flask")
VARIANT = os.environ.get("BENCH_VARIANT", "bare")
OURS = VARIANT in ("ours", "ours_b", "ours_ref", "ours_capture", "ours_capture_ref")
CAPTURE = VARIANT in ("ours_capture", "ours_capture_ref")


class NoopWSGIRecorder:
    """The floor: time the app call, catch the status, append four values to a list."""

    def __init__(self, app):
        self.app = app
        self.records: list[tuple] = []

    def __call__(self, environ, start_response):
        start = perf_counter()
        status = None

        def catch_status(status_line, headers, exc_info=None):
            nonlocal status
            status = status_line
            return start_response(status_line, headers, exc_info)

        body = self.app(environ, catch_status)
        self.records.append(
            (environ["REQUEST_METHOD"], environ["PATH_INFO"], status, perf_counter() - start)
        )
        return body


def _module(name: str):
    """Import `api_analytics.<name>` and check it is the implementation we asked for."""
    import importlib

    module = importlib.import_module(f"api_analytics.{name}")
    ours = hasattr(module, "_DEFAULTS")  # the published modules have no such table
    if ours != OURS:
        sys.exit(f"BENCH_VARIANT={VARIANT} imported the wrong api_analytics: {module.__file__}")
    print(f"[{FRAMEWORK} {VARIANT}] api_analytics from {module.__file__}", file=sys.stderr)
    return module


def _config(module):
    config = module.Config()
    # published: a closed loopback port (its first post is 60 s after the first request).
    config.server_url = os.environ["BENCH_SINK_URL"]
    if CAPTURE:
        import middleware_payload

        middleware_payload.capture_config(config)
    return config


class NoopDjangoMiddleware:
    """The floor for a Django middleware: the same recording as NoopWSGIRecorder, from
    inside Django's middleware chain (what `MIDDLEWARE += [...]` itself costs)."""

    records: list[tuple] = []

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = perf_counter()
        response = self.get_response(request)
        self.records.append((request.method, request.path, response.status_code,
                             perf_counter() - start))  # fmt: skip
        return response


if not OURS and VARIANT not in ("bare", "noop", "noop_mw", "published"):
    sys.exit(f"unknown BENCH_VARIANT {VARIANT!r}")

if FRAMEWORK == "flask":
    from flask import Flask, request

    flask_app = Flask(__name__)

    @flask_app.get("/")
    def root():
        return {"message": "Hello World"}

    @flask_app.post("/echo")
    def echo():
        return request.get_json()

    if OURS or VARIANT == "published":
        analytics = _module("flask")
        analytics.add_middleware(flask_app, "bench-key", _config(analytics))
    app = NoopWSGIRecorder(flask_app) if VARIANT == "noop" else flask_app

elif FRAMEWORK == "django":
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.http import JsonResponse
    from django.urls import path

    def root(request):
        return JsonResponse({"message": "Hello World"})

    def echo(request):
        return JsonResponse(json.loads(request.body))

    urlpatterns = [path("", root), path("echo", echo)]
    middleware = [f"{__name__}.NoopDjangoMiddleware"] if VARIANT == "noop_mw" else []
    extra = {}
    if OURS or VARIANT == "published":
        analytics = _module("django")
        middleware = ["api_analytics.django.Analytics"]
        extra = {"ANALYTICS_API_KEY": "bench-key", "ANALYTICS_CONFIG": _config(analytics)}
    settings.configure(
        DEBUG=False, SECRET_KEY="bench", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
        MIDDLEWARE=middleware, INSTALLED_APPS=[], DATABASES={}, USE_TZ=True, **extra,
    )  # fmt: skip
    django_app = get_wsgi_application()
    app = NoopWSGIRecorder(django_app) if VARIANT == "noop" else django_app

else:
    sys.exit(f"unknown BENCH_FRAMEWORK {FRAMEWORK!r}")
