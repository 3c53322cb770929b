"""FastAPI middleware: `app.add_middleware(Analytics, api_key=..., config=...)`.

A pure ASGI middleware (`api_analytics.asgi`); the user's mappers are functions of the
Starlette `Request`, which FastAPI's is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from .asgi import ASGIAnalytics, ASGIApp
from .recorder import DEFAULT_SERVER_URL, BaseConfig, Recorder, default_mappers

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]

FRAMEWORK = "FastAPI"

Mapper = Callable[[Request], str | None]


def default_get_path(request: Request) -> str | None:
    return request.scope.get("path")


def default_get_ip_address(request: Request) -> str | None:
    client = request.scope.get("client")
    return client[0] if client else None


def default_get_hostname(request: Request) -> str | None:
    return request.url.hostname


def default_get_user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def default_get_user_id(request: Request) -> str | None:
    return None


@dataclass
class Config(BaseConfig):
    """Settings for `Analytics`; create it, then assign the attributes you need.

    privacy_level: 0 sends the client IP (stored), 1 sends it for the country lookup
        only (the server discards it), 2 never reads or sends it.
    server_url: the API Analytics server; default `$API_ANALYTICS_URL`, else
        http://localhost:8000.
    get_path, get_ip_address, get_hostname, get_user_agent, get_user_id: functions of
        the Starlette `Request`, called once the response has been sent, returning a
        string or None.
    flush_interval: seconds between background sends.
    max_batch: records per POST; a full batch is sent without waiting for the interval.
    max_buffer: records kept while the server is unreachable; beyond it the oldest go.
    shutdown_timeout: seconds to wait for the final flush at shutdown.
    request_timeout: seconds for one POST to the server.
    retry_backoff, retry_backoff_max: first and largest wait between retries.
    """

    get_path: Mapper = default_get_path
    get_ip_address: Mapper = default_get_ip_address
    get_hostname: Mapper = default_get_hostname
    get_user_agent: Mapper = default_get_user_agent
    get_user_id: Mapper = default_get_user_id


_DEFAULTS = default_mappers(Config)


class Analytics(ASGIAnalytics):
    """Logs every HTTP request of the wrapped app to an API Analytics server."""

    framework = FRAMEWORK
    request_class = Request

    def __init__(self, app: ASGIApp, api_key: str = "", config: Config | None = None) -> None:
        config = type(self).config_class() if config is None else config
        recorder = Recorder.create(api_key, config, self.framework, self.defaults)
        super().__init__(app, recorder)

    config_class = Config
    defaults = _DEFAULTS
