"""Falcon middleware: `falcon.App(middleware=[Analytics(api_key, config)])`, and the same
in `falcon.asgi.App`.

The clock runs from `process_request` (before routing, so a 404 is logged too) to
`process_response`, after Falcon's error handlers set the status of a failed request.
On `falcon.asgi.App` the final flush runs at lifespan shutdown (`process_shutdown`);
a WSGI app flushes at interpreter exit (a gunicorn worker exits after SIGTERM).

Falcon answers a failure with its error handlers and gives middleware only
`req_succeeded`: the first `Analytics` built wraps `App._handle_exception` (WSGI and ASGI,
once per process), which leaves in `req.context`, for requests this middleware started,
the exception behind a 500 or the schema error behind a media validation 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import Any

import falcon
import falcon.asgi

from .capture import VALIDATION_STATUSES, Extra, exception_info, with_error_body, with_exception
from .exchange import AsyncCopyingReader, CopyingReader, error_body, whole_exchange, whole_response
from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig, Recorder

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]


def default_get_user_agent(req: falcon.Request) -> str | None:
    return req.get_header("User-Agent")


@dataclass
class Config(BaseConfig):
    """Settings for `Analytics`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the Falcon `Request` (WSGI or ASGI)."""

    get_path: Mapper[falcon.Request] = reads("path")
    get_ip_address: Mapper[falcon.Request] = reads("remote_addr")
    get_hostname: Mapper[falcon.Request] = reads("host")
    get_user_agent: Mapper[falcon.Request] = default_get_user_agent
    get_user_id: Mapper[falcon.Request] = no_user_id


_ADAPTER = Adapter("Falcon", Config)


# Where the wrapped `_handle_exception` leaves what it saw, in `req.context`.
_STARTED = "_api_analytics_started"
_EXCEPTION = "_api_analytics_exception"
_VALIDATION = "_api_analytics_validation"
_EXTRA = "_api_analytics_extra"


class Analytics:
    """A Falcon middleware component logging every request to an API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and does nothing.
    """

    def __init__(self, api_key: str, config: Config | None = None) -> None:
        self._recorder = _ADAPTER.recorder(api_key, config)
        self._capture = None if self._recorder is None else self._recorder.capture
        if self._recorder is not None:
            _watch_exceptions()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        started = perf_counter()
        req.context._api_analytics_started = started
        if self._capture is not None:
            self._start_capture(req, started)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        finished = perf_counter()
        if self._reads_answer(resp, req_succeeded):
            body = None if resp.stream is not None else resp.render_body()
            self._record(req, resp, finished, self._finish(req, resp, body))
        elif self._recorder is not None:
            self._record(req, resp, finished, None)

    def _reads_answer(self, resp: falcon.Response, req_succeeded: bool) -> bool:
        """Whether the answer adds to the row: a failure, a capture, a 400/422."""
        return self._recorder is not None and (
            not req_succeeded or self._capture is not None or _validation(resp.status)
        )

    def _record(self, req: falcon.Request, resp: falcon.Response, finished: float, extra: Any):
        recorder = self._recorder
        try:
            started = getattr(req.context, _STARTED, finished)
            host = req.get_header("Host")
            if host is not None:
                host = host.encode("latin-1", "replace")  # the flusher parses the header
            ip = req.remote_addr if recorder.privacy != 2 else None
            agent = req.get_header("User-Agent")
            # resp.status is an int, a status line or an HTTPStatus: the flusher reads all.
            recorder.record(req, started, finished, resp.status, req.path, host, agent, ip, extra)
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the request", type(exc).__name__)

    def _start_capture(self, req: falcon.Request, started: float) -> None:
        """The request's headers and query now, its body as the responder reads it."""
        recorder: Recorder = self._recorder  # type: ignore[assignment]
        try:
            extra = whole_exchange(
                None, recorder.settings, req, started, req.query_string,
                list(req.headers.items()), req.content_type, None,
            )  # fmt: skip
            side = extra.request
            if side is not None and side.body is True:
                side.size = req.content_length
                copy = side.want_body(recorder.settings, extra.sampled, req.content_type)
                if copy is not None:
                    if isinstance(req, falcon.asgi.Request):
                        req._stream = AsyncCopyingReader(req.stream, copy)
                    else:  # req.bounded_stream wraps the environ's: both are read
                        req.env["wsgi.input"] = req.stream = CopyingReader(req.stream, copy)
            setattr(req.context, _EXTRA, extra)
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("capturing the exchange", type(exc).__name__)

    def _finish(self, req: falcon.Request, resp: falcon.Response, body: Any) -> Extra | None:
        """What the answer adds: the exception behind a 500, validation errors, and the
        captured response."""
        recorder: Recorder = self._recorder  # type: ignore[assignment]
        settings = recorder.settings
        context = vars(req.context)
        extra = context.pop(_EXTRA, None)
        try:
            status = falcon.http_status_to_code(resp.status)
            if status >= 500:
                extra = with_exception(extra, settings, None, context.pop(_EXCEPTION, None))
            if status in VALIDATION_STATUSES:
                found = context.pop(_VALIDATION, None)
                if found is not None:
                    extra = with_error_body(extra, settings, None)
                    extra.validation = found
                else:
                    extra = error_body(extra, settings, body)
            if extra is not None and extra.response is not None:
                headers = list(resp.headers.items())
                whole_response(extra, resp.content_type, headers, body, resp.stream is not None)
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("capturing the exchange", type(exc).__name__)
        return extra

    # falcon.asgi.App calls the *_async versions.
    async def process_request_async(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.process_request(req, resp)

    async def process_response_async(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        finished = perf_counter()
        if self._reads_answer(resp, req_succeeded):
            body = None if resp.stream is not None else await resp.render_body()
            self._record(req, resp, finished, self._finish(req, resp, body))
        elif self._recorder is not None:
            self._record(req, resp, finished, None)

    async def process_shutdown(self, scope: dict, event: dict) -> None:
        if self._recorder is not None:
            await self._recorder.close_in_thread()


def _validation(status: Any) -> bool:
    try:
        return falcon.http_status_to_code(status) in VALIDATION_STATUSES
    except ValueError:
        return False


def _note(req: Any, ex: Exception) -> None:
    """Leave what a failed request of ours raised in its context, read now."""
    context = getattr(req, "context", None)
    if context is None or not hasattr(context, _STARTED):
        return
    if not isinstance(ex, falcon.HTTPError | falcon.HTTPStatus):
        setattr(context, _EXCEPTION, exception_info(ex))
    elif hasattr(ex.__cause__, "validator") and hasattr(ex.__cause__, "path"):
        setattr(context, _VALIDATION, schema_errors(ex.__cause__))


def schema_errors(error: Any) -> list[tuple[str, str]]:
    """[(location, type)] of a jsonschema ValidationError (falcon.media.validators)."""
    location = ".".join(["body", *(str(part) for part in error.path)])
    kind = str(error.validator)
    if kind == "required":
        field = str(error.message).split("'")
        if len(field) > 2:
            location, kind = f"{location}.{field[1]}", "missing"
    return [(location, kind)]


def _watch_exceptions() -> None:
    """Wrap `_handle_exception` of Falcon's WSGI and ASGI apps, once per process."""
    if getattr(falcon.App._handle_exception, "_api_analytics", False):
        return
    handle = falcon.App._handle_exception
    handle_async = falcon.asgi.App._handle_exception

    def _handle_exception(self: Any, req: Any, resp: Any, ex: Any, params: Any) -> bool:
        _note(req, ex)
        return handle(self, req, resp, ex, params)

    async def _handle_exception_async(
        self: Any, req: Any, resp: Any, ex: Any, params: Any, **kwargs: Any
    ) -> bool:
        _note(req, ex)
        return await handle_async(self, req, resp, ex, params, **kwargs)

    _handle_exception._api_analytics = True  # type: ignore[attr-defined]
    falcon.App._handle_exception = _handle_exception  # type: ignore[method-assign]
    falcon.asgi.App._handle_exception = _handle_exception_async  # type: ignore[method-assign]
