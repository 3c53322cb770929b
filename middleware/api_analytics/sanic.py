"""Sanic middleware: `add_middleware(app, api_key, config)`.

Request and response middleware at the highest priority, so the clock starts before
any other request middleware and stops after every other response middleware, when the
response is ready to send (a handler that streams with `request.respond()` is timed to
its first send). Sanic turns exceptions into error responses, which are logged with
their status; a request that fails before routing (a 404) is timed from its response
middleware, so with 0 ms, as in the published package. Each Sanic worker process flushes
in `after_server_stop`, which Sanic reaches on SIGINT and SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from sanic import HTTPResponse, Request, Sanic

from .recorder import DEFAULT_SERVER_URL, BaseConfig, Recorder, default_mappers

__all__ = ["DEFAULT_SERVER_URL", "Config", "add_middleware"]

FRAMEWORK = "Sanic"
# Sanic runs request middleware by descending priority and response middleware by
# ascending priority: the highest makes ours the outermost of both.
PRIORITY = 1_000_000

Mapper = Callable[[Request], str | None]


def default_get_path(request: Request) -> str | None:
    return request.path


def default_get_ip_address(request: Request) -> str | None:
    return request.ip


def default_get_hostname(request: Request) -> str | None:
    return request.server_name


def default_get_user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def default_get_user_id(request: Request) -> str | None:
    return None


@dataclass
class Config(BaseConfig):
    """Settings for `add_middleware`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the Sanic `Request`."""

    get_path: Mapper = default_get_path
    get_ip_address: Mapper = default_get_ip_address
    get_hostname: Mapper = default_get_hostname
    get_user_agent: Mapper = default_get_user_agent
    get_user_id: Mapper = default_get_user_id


_DEFAULTS = default_mappers(Config)


def add_middleware(app: Sanic, api_key: str, config: Config | None = None) -> None:
    """Log every request `app` answers to your API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and leaves `app` untouched.
    """
    config = Config() if config is None else config
    recorder = Recorder.create(api_key, config, FRAMEWORK, _DEFAULTS)
    if recorder is None:
        return

    def start_clock(request: Request) -> None:
        request.ctx._api_analytics_started = perf_counter()

    def record(request: Request, response: HTTPResponse) -> None:
        _record(recorder, request, response)

    async def flush(app: Sanic, loop: Any = None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, recorder.client.close)

    app.on_request(start_clock, priority=PRIORITY)
    app.on_response(record, priority=PRIORITY)
    app.after_server_stop(flush)


def _record(recorder: Recorder, request: Request, response: HTTPResponse) -> None:
    finished = perf_counter()
    try:
        started = getattr(request.ctx, "_api_analytics_started", finished)
        headers = request.headers
        host = headers.get("host")
        if host is not None:
            host = host.encode("utf-8", "surrogateescape")  # the flusher parses the header
        path = request.path
        agent = headers.get("user-agent")
        ip = request.ip if recorder.privacy != 2 else None
        user_id = None
        if recorder.custom:
            path, host, agent, ip, user_id = recorder.map(request, path, host, agent, ip)
        status = response.status
        recorder.add((started, finished, request.method, path, status, host, agent, ip, user_id))
    except Exception as exc:  # never let recording break the host request
        recorder.warn_once("recording the request", type(exc).__name__)
