"""Django middleware: `MIDDLEWARE = ['api_analytics.django.Analytics', ...]` with the
settings `ANALYTICS_API_KEY` and (optional) `ANALYTICS_CONFIG`.

The request is recorded when the server closes the response (`HttpResponse.close`,
which every Django handler calls once the body was sent), so a streaming response is
timed to its end. Sync and async: under ASGI it runs without a thread hop. Misconfigured,
it logs one error and raises `MiddlewareNotUsed`, Django's way of leaving it out.

Django answers an exception with its own 500: its `got_request_exception` signal hands
it to us. A 400 of Django REST framework gives its error data, with its codes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import got_request_exception
from django.http import HttpRequest

from .capture import (
    VALIDATION_STATUSES,
    Extra,
    exception_info,
    with_error_body,
    with_exception,
)
from .exchange import environ_exchange, error_body, whole_response
from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig
from .records import host_name

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]


def default_get_hostname(request: HttpRequest) -> str | None:
    # Not request.get_host(): it raises for a host outside ALLOWED_HOSTS.
    return host_name(request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME"))


@dataclass
class Config(BaseConfig):
    """`ANALYTICS_CONFIG`: the fields of `api_analytics.fastapi.Config`, with mappers that
    are functions of Django's `HttpRequest`."""

    get_path: Mapper[HttpRequest] = reads("path")
    get_ip_address: Mapper[HttpRequest] = reads("META", "REMOTE_ADDR")
    get_hostname: Mapper[HttpRequest] = default_get_hostname
    get_user_agent: Mapper[HttpRequest] = reads("META", "HTTP_USER_AGENT")
    get_user_id: Mapper[HttpRequest] = no_user_id


_ADAPTER = Adapter("Django", Config)
_DEFAULTS = _ADAPTER.defaults  # bench/middleware_wsgi_app.py tells this package by it
# Where the exception signal leaves the exception's info on the request (read, not the
# exception itself: that would tie the request to its frames in a reference cycle).
_EXCEPTION = "_api_analytics_exception"


def _on_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]  # the signal is sent from the handler's `except` block
    # A request object without a __dict__ has nowhere to hold it: then there is none.
    if request is not None and exc is not None and hasattr(request, "__dict__"):
        vars(request)[_EXCEPTION] = exception_info(exc)


class Analytics:
    """Logs every request Django answers; put it first in MIDDLEWARE to time them all."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        recorder = _ADAPTER.recorder(
            getattr(settings, "ANALYTICS_API_KEY", None),
            getattr(settings, "ANALYTICS_CONFIG", None),
        )
        if recorder is None:
            raise MiddlewareNotUsed("API Analytics is misconfigured (see the error logged)")
        self.recorder = recorder
        self.capture = recorder.capture
        if recorder.settings.exceptions:
            got_request_exception.connect(_on_exception, dispatch_uid=__name__)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = perf_counter()
        extra = None if self.capture is None else self._start_capture(request, started)
        try:
            response = self.get_response(request)
        except Exception as exc:
            # Only with DEBUG_PROPAGATE_EXCEPTIONS: Django otherwise answers 500 itself.
            self._failed(request, started, extra, exc)
            raise
        self._record_on_close(request, response, started, extra)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        started = perf_counter()
        extra = None if self.capture is None else self._start_capture(request, started)
        try:
            response = await self.get_response(request)
        except Exception as exc:
            self._failed(request, started, extra, exc)
            raise
        self._record_on_close(request, response, started, extra)
        return response

    def _record_on_close(
        self, request: HttpRequest, response: Any, started: float, extra: Extra | None
    ) -> None:
        """Record when the server closes the response, before Django's own close (which
        sends request_finished and so may close the database connection a mapper uses)."""
        close = response.close
        status = response.status_code
        if status >= 400 or extra is not None:
            extra = self._finish(request, response, status, extra)

        def record_and_close() -> None:
            finished = perf_counter()
            # The closure and the response refer to each other until this runs: undo it,
            # so the response and its request are freed at once rather than by the cyclic
            # GC (left to it, the cycles cost Django's throughput 5 % in bench/middleware.py).
            vars(response).pop("close", None)
            try:
                self._record(request, started, finished, status, extra)
            finally:
                close()

        response.close = record_and_close

    def _record(
        self, request: HttpRequest, started: float, finished: float, status: Any, extra: Any
    ) -> None:
        recorder = self.recorder
        try:
            meta = request.META
            host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME")
            if host is not None:
                host = host.encode("latin-1", "replace")  # the flusher parses the header
            ip = meta.get("REMOTE_ADDR") if recorder.privacy != 2 else None
            agent = meta.get("HTTP_USER_AGENT")
            if extra is not None:
                extra.settle()  # let go of the taps' objects now (capture.Captured)
            recorder.record(
                request, started, finished, status, request.path, host, agent, ip, extra
            )
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the request", type(exc).__name__)

    def _start_capture(self, request: HttpRequest, started: float) -> Extra:
        """The request's headers and query now, its body as the view reads it."""
        extra, stream = environ_exchange(
            self.recorder.settings, request.META, request.method, request.path, started,
            getattr(request, "_stream", None),
        )  # fmt: skip
        if stream is not None:
            request._stream = stream
        return extra

    def _finish(
        self, request: HttpRequest, response: Any, status: int, extra: Extra | None
    ) -> Extra | None:
        """What the response adds: its exception (5xx), validation errors (400/422) and,
        when captured, its headers and body."""
        settings = self.recorder.settings
        if status >= 500:
            extra = with_exception(extra, settings, None, vars(request).pop(_EXCEPTION, None))
        streamed = getattr(response, "streaming", False)
        if status in VALIDATION_STATUSES:
            data = getattr(response, "data", None)  # Django REST framework's, with codes
            if isinstance(data, dict):
                extra = with_error_body(extra, settings, None)
                extra.validation = data
            elif not streamed:
                extra = error_body(extra, settings, response.content)
        if extra is not None and extra.response is not None:
            body = None if streamed else response.content
            headers = list(response.items())
            whole_response(extra, response.get("Content-Type"), headers, body, streamed)
        return extra

    def _failed(
        self, request: HttpRequest, started: float, extra: Extra | None, exc: Exception
    ) -> None:
        """Record a request whose exception Django let through, as a 500."""
        info = vars(request).pop(_EXCEPTION, None)  # the signal's, when Django sent it
        extra = with_exception(extra, self.recorder.settings, exc, info)
        self._record(request, started, perf_counter(), 500, extra)
