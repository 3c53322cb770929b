"""aiohttp middleware: `add_middleware(app, api_key, config)`.

It goes first in `app.middlewares`, so it times every other middleware too, and sees the
404 of an unknown route. The clock stops when the handler chain returns: a
`StreamResponse` the handler wrote is timed to its end, a `Response` until it is handed
to aiohttp to send. An `HTTPException` is logged with its status, any other exception as
500 (with the exception), and both are re-raised. The final flush runs in
`app.on_cleanup`, which `web.run_app` reaches on SIGINT and SIGTERM. A captured request
body is the one the handler read (`request.read()`, `.text()`, `.json()`, `.post()`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from aiohttp import web

from .capture import VALIDATION_STATUSES, Extra, with_exception
from .exchange import answered
from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig, Recorder, header_recorder

__all__ = ["DEFAULT_SERVER_URL", "Config", "add_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Config(BaseConfig):
    """Settings for `add_middleware`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the aiohttp `web.Request`."""

    get_path: Mapper[web.Request] = reads("path")
    get_ip_address: Mapper[web.Request] = reads("remote")
    get_hostname: Mapper[web.Request] = reads("url.host")
    get_user_agent: Mapper[web.Request] = reads("headers", "User-Agent")
    get_user_id: Mapper[web.Request] = no_user_id


_ADAPTER = Adapter("aiohttp", Config)
_record = header_recorder("remote")


def add_middleware(app: web.Application, api_key: str, config: Config | None = None) -> None:
    """Log every request `app` answers to your API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and leaves `app` untouched.
    """
    recorder = _ADAPTER.recorder(api_key, config)
    if recorder is None:
        return

    capture = recorder.capture

    @web.middleware
    async def api_analytics(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a response, raised
            extra = _answered(recorder, request, started, exc)
            _record(recorder, request, started, perf_counter(), exc.status, extra)
            raise
        except Exception as exc:
            extra = with_exception(None, recorder.settings, exc)
            if capture is not None:
                extra = _answered(recorder, request, started, None, extra)
            _record(recorder, request, started, perf_counter(), 500, extra)
            raise
        status = response.status
        extra = None
        if capture is not None or status in VALIDATION_STATUSES:
            extra = _answered(recorder, request, started, response)
        _record(recorder, request, started, perf_counter(), status, extra)
        return response

    async def flush(app: web.Application) -> None:
        await recorder.close_in_thread()

    app.middlewares.insert(0, api_analytics)
    app.on_cleanup.append(flush)


def _answered(
    recorder: Recorder, request: web.Request, started: float, response: Any,
    extra: Extra | None = None,
) -> Extra | None:  # fmt: skip
    """What the response adds (its validation errors, the captured exchange); None for no
    response (an exception)."""
    try:
        body = getattr(response, "body", None)
        streamed = not isinstance(body, bytes)  # a StreamResponse, or a payload (a file)
        return answered(
            extra, recorder.settings, request, started, getattr(response, "status", 500),
            request.query_string, request._read_bytes, response, body, streamed,
        )  # fmt: skip
    except Exception as exc:  # never let recording break the host request
        recorder.warn_once("capturing the exchange", type(exc).__name__)
        return extra
