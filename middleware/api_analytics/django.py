"""Django middleware: `MIDDLEWARE = ['api_analytics.django.Analytics', ...]` with the
settings `ANALYTICS_API_KEY` and (optional) `ANALYTICS_CONFIG`.

The request is recorded when the server closes the response (`HttpResponse.close`,
which every Django handler calls once the body was sent), so a streaming response is
timed to its end. Sync and async: under ASGI it runs without a thread hop. Misconfigured,
it logs one error and raises `MiddlewareNotUsed`, Django's way of leaving it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest

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

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = perf_counter()
        try:
            response = self.get_response(request)
        except Exception:
            # Only with DEBUG_PROPAGATE_EXCEPTIONS: Django otherwise answers 500 itself.
            self._record(request, started, perf_counter(), 500)
            raise
        self._record_on_close(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        started = perf_counter()
        try:
            response = await self.get_response(request)
        except Exception:
            self._record(request, started, perf_counter(), 500)
            raise
        self._record_on_close(request, response, started)
        return response

    def _record_on_close(self, request: HttpRequest, response: Any, started: float) -> None:
        """Record when the server closes the response, before Django's own close (which
        sends request_finished and so may close the database connection a mapper uses)."""
        close = response.close
        status = response.status_code

        def record_and_close() -> None:
            finished = perf_counter()
            # The closure and the response refer to each other until this runs: undo it,
            # so the response and its request are freed at once rather than by the cyclic
            # GC (left to it, the cycles cost Django's throughput 5 % in bench/middleware.py).
            vars(response).pop("close", None)
            try:
                self._record(request, started, finished, status)
            finally:
                close()

        response.close = record_and_close

    def _record(self, request: HttpRequest, started: float, finished: float, status: Any) -> None:
        recorder = self.recorder
        try:
            meta = request.META
            host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME")
            if host is not None:
                host = host.encode("latin-1", "replace")  # the flusher parses the header
            ip = meta.get("REMOTE_ADDR") if recorder.privacy != 2 else None
            agent = meta.get("HTTP_USER_AGENT")
            recorder.record(request, started, finished, status, request.path, host, agent, ip)
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the request", type(exc).__name__)
