"""FastAPI / Starlette middleware: `app.add_middleware(Analytics, api_key=..., config=...)`.

A pure ASGI middleware: it watches `send` for the status and the last body chunk,
builds one small tuple per request and appends it to a buffer. Everything else
(decoding, JSON, gzip, HTTP) happens in the background flusher of `api_analytics.core`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .core import Client

logger = logging.getLogger(__name__)

DEFAULT_SERVER_URL = "http://localhost:8000"
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


def _default_server_url() -> str:
    return os.environ.get("API_ANALYTICS_URL") or DEFAULT_SERVER_URL


@dataclass
class Config:
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

    privacy_level: int = 0
    server_url: str = field(default_factory=_default_server_url)
    get_path: Mapper = default_get_path
    get_ip_address: Mapper = default_get_ip_address
    get_hostname: Mapper = default_get_hostname
    get_user_agent: Mapper = default_get_user_agent
    get_user_id: Mapper = default_get_user_id
    flush_interval: float = 5.0
    max_batch: int = 1000
    max_buffer: int = 100_000
    shutdown_timeout: float = 5.0
    request_timeout: float = 10.0
    retry_backoff: float = 1.0
    retry_backoff_max: float = 60.0


_MAPPERS = {
    "get_path": default_get_path,
    "get_ip_address": default_get_ip_address,
    "get_hostname": default_get_hostname,
    "get_user_agent": default_get_user_agent,
    "get_user_id": default_get_user_id,
}


class Analytics:
    """Logs every HTTP request of the wrapped app to an API Analytics server."""

    def __init__(self, app: ASGIApp, api_key: str = "", config: Config | None = None) -> None:
        self.app = app
        self._client: Client | None = None
        try:
            self._setup(api_key, Config() if config is None else config)
        except (ValueError, TypeError, AttributeError) as exc:
            # The host app must keep serving: log once, then pass every request through.
            logger.error("API Analytics disabled: %s", exc)
            self._client = None

    def _setup(self, api_key: str, config: Config) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key is empty; pass api_key='<your key>'")
        privacy = config.privacy_level
        if isinstance(privacy, bool) or privacy not in (0, 1, 2):
            raise ValueError("privacy_level must be 0, 1 or 2")
        if not isinstance(config.server_url, str):
            raise ValueError("server_url must be a string")
        custom = {}
        for name, default in _MAPPERS.items():
            mapper = getattr(config, name)
            if not callable(mapper):
                raise ValueError(f"{name} must be a function of the request")
            if mapper is not default:
                custom[name] = mapper
        if privacy == 2:
            custom.pop("get_ip_address", None)  # level 2 never calls the IP mapper
        self._privacy = privacy
        self._custom = custom
        self._warned: set[str] = set()
        self._client = Client(
            api_key,
            config.server_url,
            privacy,
            framework=FRAMEWORK,
            flush_interval=config.flush_interval,
            max_batch=config.max_batch,
            max_buffer=config.max_buffer,
            shutdown_timeout=config.shutdown_timeout,
            request_timeout=config.request_timeout,
            retry_backoff=config.retry_backoff,
            retry_backoff_max=config.retry_backoff_max,
        )
        self._buffer = self._client._buffer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" or self._client is None:
            if kind == "lifespan" and self._client is not None:
                await self.app(scope, receive, self._watch_lifespan(send))
            else:
                await self.app(scope, receive, send)
            return

        started = perf_counter()
        status = 0
        finished = 0.0

        async def watch_send(message: Message) -> None:
            nonlocal status, finished
            if status:
                # After the start: the response ends with the first message that does
                # not announce more body (the last body chunk, or a pathsend).
                if not (finished or message.get("more_body")):
                    finished = perf_counter()
            elif message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failure = None
        try:
            await self.app(scope, receive, watch_send)
        except BaseException as exc:
            if not finished:
                if not isinstance(exc, Exception):
                    raise  # cancelled before the response ended: nothing to record
                status = 500  # the client gets a 500 (or a cut-off response)
            failure = exc  # recorded below, then re-raised unchanged

        # Recording, inlined rather than a method call: this runs for every request of
        # the host API. The two perf_counter readings go into the record as they are:
        # the flusher turns them into created_at and response_time, off the request path.
        try:
            host = agent = None
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value
                    if agent is not None:
                        break
                elif name == b"user-agent":
                    agent = value
                    if host is not None:
                        break
            if host is None:
                server = scope.get("server")
                host = server[0] if server else None
            ip = None
            if self._privacy != 2:
                client = scope.get("client")
                ip = client[0] if client else None
            path = scope["path"]  # required by the ASGI spec
            user_id = None
            if self._custom:
                path, host, agent, ip, user_id = self._map(scope, path, host, agent, ip)
            buffer = self._buffer
            # Client.add, inlined: one comparison guards the slow path.
            if len(buffer) >= self._client._slow_at:
                self._client._add_slowly(buffer)
            buffer.append(
                (started, finished or perf_counter(), scope["method"], path, status or 500,
                 host, agent, ip, user_id)
            )  # fmt: skip
        except Exception as exc:  # never let recording break the host request
            self._warn_once("recording the request", type(exc).__name__)
        if failure is not None:
            try:
                raise failure
            finally:
                failure = None  # no reference cycle through the traceback

    def _map(self, scope: Scope, path: Any, host: Any, agent: Any, ip: Any) -> tuple:
        """Apply the user's mappers; a failing one nulls its field and warns once."""
        request = Request(scope)
        custom = self._custom
        user_id = None
        if "get_path" in custom:
            # The server refuses a row without a path: fall back to the URL path.
            path = self._call(custom["get_path"], "get_path", request) or path
        if "get_hostname" in custom:
            host = self._call(custom["get_hostname"], "get_hostname", request)
        if "get_user_agent" in custom:
            agent = self._call(custom["get_user_agent"], "get_user_agent", request)
        if "get_ip_address" in custom:
            ip = self._call(custom["get_ip_address"], "get_ip_address", request)
        if "get_user_id" in custom:
            user_id = self._call(custom["get_user_id"], "get_user_id", request)
        return path, host, agent, ip, user_id

    def _call(self, mapper: Mapper, name: str, request: Request) -> str | None:
        try:
            value = mapper(request)
        except Exception as exc:
            # Only the exception's type: its message could hold an IP or a user id.
            self._warn_once(name, f"raised {type(exc).__name__}")
            return None
        if value is None or type(value) is str:
            return value
        if isinstance(value, str):
            return str(value)
        self._warn_once(name, f"returned {type(value).__name__}, not a string")
        return None

    def _warn_once(self, what: str, reason: str) -> None:
        if what in self._warned:
            return
        self._warned.add(what)
        logger.warning(
            "API Analytics: %s %s; the field is sent as null for this request and "
            "further failures of it are not logged",
            what,
            reason,
        )

    def _watch_lifespan(self, send: Send) -> Send:
        """Pass lifespan messages through; flush once the app has shut down."""
        client = self._client

        async def lifespan_send(message: Message) -> None:
            if client is not None and message["type"] in (
                "lifespan.shutdown.complete",
                "lifespan.shutdown.failed",
            ):
                await anyio.to_thread.run_sync(client.close)
            await send(message)

        return lifespan_send
