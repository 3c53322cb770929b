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

from dataclasses import dataclass
from time import perf_counter
from typing import Any

from sanic import HTTPResponse, Request, Sanic

from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig, header_recorder

__all__ = ["DEFAULT_SERVER_URL", "Config", "add_middleware"]

# Sanic runs request middleware by descending priority and response middleware by
# ascending priority: the highest makes ours the outermost of both.
PRIORITY = 1_000_000


@dataclass
class Config(BaseConfig):
    """Settings for `add_middleware`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the Sanic `Request`."""

    get_path: Mapper[Request] = reads("path")
    get_ip_address: Mapper[Request] = reads("ip")
    get_hostname: Mapper[Request] = reads("server_name")
    get_user_agent: Mapper[Request] = reads("headers", "user-agent")
    get_user_id: Mapper[Request] = no_user_id


_ADAPTER = Adapter("Sanic", Config)
_record = header_recorder("ip")


def add_middleware(app: Sanic, api_key: str, config: Config | None = None) -> None:
    """Log every request `app` answers to your API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and leaves `app` untouched.
    """
    recorder = _ADAPTER.recorder(api_key, config)
    if recorder is None:
        return

    def start_clock(request: Request) -> None:
        request.ctx._api_analytics_started = perf_counter()

    def record(request: Request, response: HTTPResponse) -> None:
        finished = perf_counter()
        started = getattr(request.ctx, "_api_analytics_started", finished)
        _record(recorder, request, started, finished, response.status)

    async def flush(app: Sanic, loop: Any = None) -> None:
        await recorder.close_in_thread()

    app.on_request(start_clock, priority=PRIORITY)
    app.on_response(record, priority=PRIORITY)
    app.after_server_stop(flush)
