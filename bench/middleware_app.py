"""The hello-world FastAPI app the middleware benchmark serves, one variant per process.

BENCH_VARIANT picks what wraps it: bare, ours, ours_b (the same again, for an A/A run),
ours_ref (ours as it is at a git ref, for an A/B run), ours_capture (ours logging both
sides of each exchange, bench/middleware_payload.py; POST /echo answers its JSON back),
ours_capture_ref (the same at the git ref), ours_mappers (ours with the seed's lambda
mappers), noop (a pure-ASGI recorder doing the least any analytics middleware must) or
hosted (the `fastapi-analytics` client). `bench/middleware.py` puts the right
`api_analytics` first on PYTHONPATH; this module refuses to run with the wrong one.
"""

from __future__ import annotations

import os
import sys
from time import perf_counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

VARIANT = os.environ.get("BENCH_VARIANT", "bare")


class NoopRecorder:
    """The floor: time the request, catch the status, append four values to a list."""

    def __init__(self, app):
        self.app = app
        self.records: list[tuple] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 0

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_wrapper)
        self.records.append((scope["method"], scope["path"], status, perf_counter() - start))


def _import_analytics(expect_hosted: bool):
    """Import `api_analytics.fastapi` and check it is the implementation we asked for."""
    import api_analytics.fastapi as module
    from starlette.middleware.base import BaseHTTPMiddleware

    is_hosted = issubclass(module.Analytics, BaseHTTPMiddleware)
    if is_hosted != expect_hosted:
        sys.exit(f"BENCH_VARIANT={VARIANT} imported the wrong api_analytics: {module.__file__}")
    print(f"[{VARIANT}] api_analytics from {module.__file__}", file=sys.stderr, flush=True)
    return module


app = FastAPI()


@app.get("/")
async def root():
    return {"message": "Hello World"}


@app.post("/echo")
async def echo(request: Request):
    return JSONResponse(await request.json())


if VARIANT in ("ours", "ours_b", "ours_mappers", "ours_ref", "ours_capture", "ours_capture_ref"):
    analytics = _import_analytics(expect_hosted=False)
    config = analytics.Config()
    config.server_url = os.environ["BENCH_SINK_URL"]
    if VARIANT in ("ours_capture", "ours_capture_ref"):
        import middleware_payload

        middleware_payload.capture_config(config)
    if VARIANT == "ours_mappers":
        config.get_ip_address = lambda request: request.headers.get(
            "X-Forwarded-For", request.client.host
        )
        config.get_user_agent = lambda request: request.headers.get("User-Agent", "")
        config.get_user_id = lambda request: request.headers.get("X-AUTH-TOKEN", "")
    app.add_middleware(analytics.Analytics, api_key="bench-key", config=config)
elif VARIANT == "hosted":
    analytics = _import_analytics(expect_hosted=True)
    config = analytics.Config()
    config.server_url = os.environ["BENCH_SINK_URL"]  # a closed port: nothing listens
    app.add_middleware(analytics.Analytics, api_key="bench-key", config=config)
elif VARIANT == "noop":
    app.add_middleware(NoopRecorder)
elif VARIANT != "bare":
    sys.exit(f"unknown BENCH_VARIANT {VARIANT!r}")
