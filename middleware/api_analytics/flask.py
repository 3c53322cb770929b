"""Flask middleware: `add_middleware(app, api_key, config)`.

It wraps `app.wsgi_app` (`api_analytics.wsgi`), so the response time runs until the
server has sent the whole body, and an exception Flask lets through (debug, testing,
PROPAGATE_EXCEPTIONS) is recorded as 500 and re-raised. An exception Flask answers with
its own 500 reaches us through its `got_request_exception` signal. Your mappers, if you
set any, run in `teardown_request`: inside the request context, after your view, so
`request`, `g` and what your view stored there are all readable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, got_request_exception, request

from .capture import with_exception
from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig, Recorder
from .records import host_name
from .wsgi import HOOKED_KEY, WSGIAnalytics, environ_fields

__all__ = ["DEFAULT_SERVER_URL", "Config", "add_middleware"]


@dataclass
class Config(BaseConfig):
    """Settings for `add_middleware`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the Flask `Request`."""

    get_path: Mapper[Request] = reads("path")
    get_ip_address: Mapper[Request] = reads("remote_addr")
    get_hostname: Mapper[Request] = reads("host", then=host_name)
    get_user_agent: Mapper[Request] = reads("headers", "User-Agent")
    get_user_id: Mapper[Request] = no_user_id


_ADAPTER = Adapter("Flask", Config)
_DEFAULTS = _ADAPTER.defaults  # bench/middleware_wsgi_app.py tells this package by it


def add_middleware(app: Flask, api_key: str, config: Config | None = None) -> None:
    """Log every request `app` answers to your API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and leaves `app` untouched.
    """
    recorder = _ADAPTER.recorder(api_key, config)
    if recorder is None:
        return
    app.wsgi_app = WSGIAnalytics(app.wsgi_app, recorder)  # type: ignore[method-assign]
    if recorder.custom:
        app.teardown_request(_mapper_hook(recorder))
    if recorder.settings.exceptions:
        # Held strongly: the app holds no other reference to the receiver.
        got_request_exception.connect(_exception_hook(recorder), app, weak=False)


def _mapper_hook(recorder: Recorder) -> Callable[[BaseException | None], None]:
    def map_request(exc: BaseException | None = None) -> None:
        try:
            current: Any = request._get_current_object()  # type: ignore[attr-defined]
            environ = current.environ
            path, host, agent, ip = environ_fields(environ, recorder.privacy)
            extra = environ.get(HOOKED_KEY, (None, None))[1]
            *mapped, extra = recorder.map(current, path, host, agent, ip, extra)
            environ[HOOKED_KEY] = (mapped, extra)
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("mapping the request", type(exc).__name__)

    return map_request


def _exception_hook(recorder: Recorder) -> Callable[..., None]:
    def on_exception(sender: Flask, exception: BaseException, **kwargs: Any) -> None:
        try:
            environ = request.environ
            mapped, extra = environ.get(HOOKED_KEY, (None, None))
            environ[HOOKED_KEY] = (mapped, with_exception(extra, recorder.settings, exception))
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the exception", type(exc).__name__)

    return on_exception
