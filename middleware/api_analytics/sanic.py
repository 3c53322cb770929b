"""Sanic middleware: `add_middleware(app, api_key, config)`.

Request and response middleware at the highest priority, so the clock starts before
any other request middleware and stops after every other response middleware, when the
response is ready to send (a handler that streams with `request.respond()` is timed to
its first send). Sanic turns exceptions into error responses, which are logged with
their status; a request that fails before routing (a 404) is timed from its response
middleware, so with 0 ms, as in the published package. Each Sanic worker process flushes
in `after_server_stop`, which Sanic reaches on SIGINT and SIGTERM. The exception behind a
5xx comes from Sanic's `http.lifecycle.exception` signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException

from .capture import exception_info, with_exception
from .exchange import answered
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

    settings = recorder.settings

    def start_clock(request: Request) -> None:
        request.ctx._api_analytics_started = perf_counter()

    def record(request: Request, response: HTTPResponse) -> None:
        finished = perf_counter()
        ctx = request.ctx
        started = getattr(ctx, "_api_analytics_started", finished)
        status = response.status
        extra = None
        if status >= 400 or settings.capturing:
            try:
                if status >= 500:
                    info = getattr(ctx, "_api_analytics_exception", None)
                    extra = with_exception(None, settings, None, info)
                body = response.body
                extra = answered(
                    extra, settings, request, started, status, request.query_string,
                    request.body, response, body, _streams(request, response),
                )  # fmt: skip
            except Exception as exc:  # never let recording break the host request
                recorder.warn_once("capturing the exchange", type(exc).__name__)
        _record(recorder, request, started, finished, status, extra)

    async def keep_exception(request: Request | None, exception: BaseException) -> None:
        # A SanicException below 500 is an answer the app chose (a 404, a 400), not a failure.
        if request is not None and not (
            isinstance(exception, SanicException) and exception.status_code < 500
        ):
            request.ctx._api_analytics_exception = exception_info(exception)

    async def flush(app: Sanic, loop: Any = None) -> None:
        await recorder.close_in_thread()

    app.on_request(start_clock, priority=PRIORITY)
    app.on_response(record, priority=PRIORITY)
    if settings.exceptions:
        app.signal("http.lifecycle.exception")(keep_exception)
    app.after_server_stop(flush)


def _streams(request: Request, response: HTTPResponse) -> bool:
    """Whether the handler streams its body with `request.respond()` and `send()`: the
    response is then still empty here, without a length (an empty answer it returned
    reads the same, and is recorded as streamed too)."""
    return response.body is None or (
        not response.body
        and response.status not in (204, 304)
        and request.method != "HEAD"
        and "content-length" not in response.headers
    )
