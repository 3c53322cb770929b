"""The pure-ASGI request path shared by the FastAPI, Starlette and Litestar adapters.

It watches `send` for the status and the last body chunk, builds one small tuple per
request and appends it to a buffer. Everything else (decoding, JSON, gzip, HTTP) happens
in the background flusher of `api_analytics.core`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

import anyio.to_thread

from .recorder import Recorder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def client_host(request: Any) -> str | None:
    """The default `get_ip_address` of the ASGI adapters: the scope's client address."""
    client = request.scope.get("client")
    return client[0] if client else None


class ASGIAnalytics:
    """Logs every HTTP request of the wrapped ASGI app; `request_class(scope)` is what
    the user's mappers receive."""

    request_class: Callable[[Scope], Any]

    def __init__(self, app: ASGIApp, recorder: Recorder | None) -> None:
        self.app = app
        self._recorder = recorder
        self._client = None if recorder is None else recorder.client
        if recorder is not None:
            # Read on every request: plain attributes, not lookups through the recorder.
            self._privacy = recorder.privacy
            self._custom = recorder.custom
            self._buffer = recorder.buffer

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
        """Apply the user's mappers to a request object built from the scope."""
        return self._recorder.map(self.request_class(scope), path, host, agent, ip)

    def _warn_once(self, what: str, reason: str) -> None:
        self._recorder.warn_once(what, reason)

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
