"""Tornado: handlers inherit from `Analytics` and pass the key (and a `Config`) to it.

    class MainHandler(Analytics):
        def __init__(self, app, res):
            super().__init__(app, res, "<API-KEY>", config)

A handler is built for every request, so the settings are checked once per `Config`
object and the buffer and flusher are shared by every handler with the same key.
The clock starts when the handler is built and stops in `on_finish`, once the response
was handed to the connection (an exception Tornado turned into a 500 is logged as 500,
with the exception `send_error` is given). The response body is copied in `flush`, as
Tornado hands each chunk to the connection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.web import Application, HTTPError, RequestHandler

from .capture import (
    ERROR_BODY_LIMIT,
    VALIDATION_STATUSES,
    BodyCopy,
    Extra,
    with_error_body,
    with_exception,
)
from .exchange import whole_exchange
from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig, Recorder

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]


@dataclass
class Config(BaseConfig):
    """Settings for `Analytics`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of Tornado's `HTTPServerRequest`."""

    get_path: Mapper[HTTPServerRequest] = reads("path")
    get_ip_address: Mapper[HTTPServerRequest] = reads("remote_ip")
    get_hostname: Mapper[HTTPServerRequest] = reads("host_name")
    get_user_agent: Mapper[HTTPServerRequest] = reads("headers", "User-Agent")
    get_user_id: Mapper[HTTPServerRequest] = no_user_id


_ADAPTER = Adapter("Tornado", Config)
_MAX_CACHED = 256
_recorders: dict[tuple[Any, int], tuple[Any, Recorder | None]] = {}
_recorders_lock = threading.Lock()


def _recorder_for(api_key: Any, config: Config | None) -> Recorder | None:
    """The Recorder for this key and Config object, built (and checked) on first use.

    Kept with a reference to the config, so an id is never reused for another object;
    a handler that builds a new Config every request gets a new Recorder each time
    (about a microsecond), sharing the client of its settings.
    """
    key = (api_key, id(config))
    cached = _recorders.get(key)
    if cached is not None and cached[0] is config:
        return cached[1]
    recorder = _ADAPTER.recorder(api_key, config, per_request=True)
    with _recorders_lock:
        if len(_recorders) >= _MAX_CACHED:
            _recorders.clear()
        _recorders[key] = (config, recorder)
    return recorder


class Analytics(RequestHandler):
    """A RequestHandler that logs each request it answers to an API Analytics server."""

    def __init__(
        self,
        application: Application,
        request: HTTPServerRequest,
        api_key: str | None = None,
        config: Config | None = None,
        **kwargs: Any,
    ) -> None:
        self._analytics_started = perf_counter()
        self._analytics = _recorder_for(api_key, config)
        self._analytics_extra: Extra | None = None
        self._analytics_copies: list[BodyCopy] | None = None  # set at the first tapped flush
        super().__init__(application, request, **kwargs)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        recorder = self._analytics
        exc_info = kwargs.get("exc_info")
        # An HTTPError is the answer the handler chose, not a failure.
        if recorder is not None and exc_info and not isinstance(exc_info[1], HTTPError):
            self._analytics_extra = with_exception(
                self._analytics_extra, recorder.settings, exc_info[1]
            )
        super().send_error(status_code, **kwargs)

    def flush(self, include_footers: bool = False) -> Any:
        recorder = self._analytics
        if recorder is not None and (
            self._analytics_copies is not None
            or recorder.capture is not None
            or self.get_status() in VALIDATION_STATUSES
        ):
            try:
                self._analytics_tap(recorder)
            except Exception as exc:  # never let recording break the host request
                recorder.warn_once("capturing the exchange", type(exc).__name__)
        return super().flush(include_footers)

    def _analytics_tap(self, recorder: Recorder) -> None:
        """Copy the chunk this flush sends; at the first, decide what to copy."""
        copies = self._analytics_copies
        if copies is None:
            copies = self._analytics_copies = []
            settings = recorder.settings
            extra = self._analytics_extra
            if recorder.capture is not None:
                request = self.request
                headers = request.headers
                extra = whole_exchange(
                    extra, settings, request, self._analytics_started, request.query,
                    list(headers.get_all()), headers.get("Content-Type"), request.body,
                )  # fmt: skip
                side = extra.response
                if side is not None:
                    answer = self._headers  # what flush() writes: RequestHandler's own
                    if settings.response_headers:
                        side.headers = list(answer.get_all())
                    if side.body is True:
                        copy = side.want_body(settings, extra.sampled, answer.get("Content-Type"))
                        if copy is not None:
                            copies.append(copy)
            if self.get_status() in VALIDATION_STATUSES:
                error = BodyCopy(ERROR_BODY_LIMIT)
                extra = with_error_body(extra, settings, error)
                copies.append(error)
            self._analytics_extra = extra
        if copies:
            chunk = b"".join(self._write_buffer)
            for copy in copies:
                copy.add(chunk)

    def on_finish(self) -> None:
        finished = perf_counter()
        recorder = self._analytics
        if recorder is not None:
            try:
                request = self.request
                ip = request.remote_ip if recorder.privacy != 2 else None
                agent = request.headers.get("User-Agent")
                recorder.record(
                    request, self._analytics_started, finished, self.get_status(), request.path,
                    request.host_name, agent, ip, self._analytics_extra,
                )  # fmt: skip
            except Exception as exc:  # never let recording break the host request
                recorder.warn_once("recording the request", type(exc).__name__)
        super().on_finish()
