"""Litestar middleware: `Litestar(..., plugins=[Analytics(api_key, config)])`, or
`middleware=[Analytics(api_key, config)]`.

`Analytics` is a Litestar `ASGIMiddleware` running the pure-ASGI request path of
`api_analytics.asgi` around each route. As a plugin it also adds itself as the first
app-level middleware and flushes in `on_shutdown`, at lifespan shutdown (uvicorn's
SIGTERM ends the process before exit hooks run). Litestar runs middleware only for
requests that match a route, so an unknown path (404) is not logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.config.app import AppConfig
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.plugins import InitPlugin

from .asgi import EXCEPTION_KEY, ASGIAnalytics, ASGIApp, Receive, Scope, Send, client_host
from .mappers import Mapper, no_user_id, reads
from .recorder import DEFAULT_SERVER_URL, Adapter, BaseConfig

__all__ = ["DEFAULT_SERVER_URL", "Analytics", "Config"]


@dataclass
class Config(BaseConfig):
    """Settings for `Analytics`: the fields of `api_analytics.fastapi.Config`, with
    mappers that are functions of the Litestar `Request`."""

    get_path: Mapper[Request] = reads("scope", "path")
    get_ip_address: Mapper[Request] = client_host
    get_hostname: Mapper[Request] = reads("url.hostname")
    get_user_agent: Mapper[Request] = reads("headers", "user-agent")
    get_user_id: Mapper[Request] = no_user_id


_ADAPTER = Adapter("Litestar", Config)


class _RouteAnalytics(ASGIAnalytics):
    """The request path around one route's ASGI app (Litestar builds one per route).

    Litestar answers a route's exception itself, inside this middleware: an
    `after_exception` hook of the app, added at the route's first request, leaves the
    exception in the scope for the request path to take.
    """

    request_class = Request

    def __init__(self, app: ASGIApp, recorder: Any) -> None:
        super().__init__(app, recorder)
        if recorder.settings.exceptions:
            self._then = self._start
            self._start = self._add_hook

    def _add_hook(self, scope: Scope, receive: Receive, send: Send, started: float) -> tuple:
        app = scope.get("litestar_app")
        if app is not None and _leave_exception not in app.after_exception:
            app.after_exception.append(_leave_exception)
        self._start = self._then
        if self._start is None:
            return None, receive, send
        return self._start(scope, receive, send, started)


async def _leave_exception(exc: Exception, scope: Scope) -> None:
    scope[EXCEPTION_KEY] = exc  # type: ignore[literal-required]


class Analytics(ASGIMiddleware, InitPlugin):
    """Logs every request to a route of the app to an API Analytics server.

    Misconfigured (no key, a bad setting), it logs one error and passes requests through.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, api_key: str, config: Config | None = None) -> None:
        self._recorder = _ADAPTER.recorder(api_key, config)

    def __call__(self, app: ASGIApp) -> ASGIApp:  # type: ignore[override]
        # Our own ASGI wrapper rather than ASGIMiddleware's: it skips nothing, and the
        # request path is the one the FastAPI middleware measured.
        if self._recorder is None:
            return app
        return _RouteAnalytics(app, self._recorder)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        await self(next_app)(scope, receive, send)  # unused: __call__ builds the wrapper

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """As a plugin: be the outermost app-level middleware, and flush at shutdown."""
        if not any(middleware is self for middleware in app_config.middleware):
            app_config.middleware.insert(0, self)
        app_config.on_shutdown.append(self.close)
        return app_config

    async def close(self) -> None:
        """Deliver what is buffered (at most `shutdown_timeout` seconds)."""
        if self._recorder is not None:
            await anyio.to_thread.run_sync(self._recorder.client.close)
