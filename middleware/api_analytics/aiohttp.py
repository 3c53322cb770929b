"""aiohttp middleware: `add_middleware(app, api_key, config)`.

It goes first in `app.middlewares`, so it times every other middleware too, and sees the
404 of an unknown route. The clock stops when the handler chain returns: a
`StreamResponse` the handler wrote is timed to its end, a `Response` until it is handed
to aiohttp to send. An `HTTPException` is logged with its status, any other exception as
500, and both are re-raised. The final flush runs in `app.on_cleanup`, which
`web.run_app` reaches on SIGINT and SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from aiohttp import web

from .recorder import DEFAULT_SERVER_URL, BaseConfig, Recorder, default_mappers

__all__ = ["DEFAULT_SERVER_URL", "Config", "add_middleware"]

FRAMEWORK = "aiohttp"

Mapper = Callable[[web.Request], str | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_get_path(request: web.Request) -> str | None:
    return request.path


def default_get_ip_address(request: web.Request) -> str | None:
    return request.remote


def default_get_hostname(request: web.Request) -> str | None:
    return request.url.host


def default_get_user_agent(request: web.Request) -> str | None:
    return request.headers.get("User-Agent")


def default_get_user_id(request: web.Request) -> str | None:
    return None


@dataclass
class Config(BaseConfig):
    """Settings for `add_middleware`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the aiohttp `web.Request`."""

    get_path: Mapper = default_get_path
    get_ip_address: Mapper = default_get_ip_address
    get_hostname: Mapper = default_get_hostname
    get_user_agent: Mapper = default_get_user_agent
    get_user_id: Mapper = default_get_user_id


_DEFAULTS = default_mappers(Config)


def add_middleware(app: web.Application, api_key: str, config: Config | None = None) -> None:
    """Log every request `app` answers to your API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and leaves `app` untouched.
    """
    config = Config() if config is None else config
    recorder = Recorder.create(api_key, config, FRAMEWORK, _DEFAULTS)
    if recorder is None:
        return

    @web.middleware
    async def api_analytics(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _record(recorder, request, started, exc.status)
            raise
        except Exception:
            _record(recorder, request, started, 500)
            raise
        _record(recorder, request, started, response.status)
        return response

    async def flush(app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, recorder.client.close)

    app.middlewares.insert(0, api_analytics)
    app.on_cleanup.append(flush)


def _record(recorder: Recorder, request: web.Request, started: float, status: Any) -> None:
    finished = perf_counter()
    try:
        headers = request.headers
        host = headers.get("Host")
        if host is not None:
            host = host.encode("utf-8", "surrogateescape")  # the flusher parses the header
        path = request.path
        agent = headers.get("User-Agent")
        ip = request.remote if recorder.privacy != 2 else None
        user_id = None
        if recorder.custom:
            path, host, agent, ip, user_id = recorder.map(request, path, host, agent, ip)
        recorder.add((started, finished, request.method, path, status, host, agent, ip, user_id))
    except Exception as exc:  # never let recording break the host request
        recorder.warn_once("recording the request", type(exc).__name__)
