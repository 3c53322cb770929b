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

from . import capture
from .capture import BodyCopy, Extra, Settings
from .recorder import Recorder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# Where a framework that turns exceptions into responses inside our middleware (Litestar)
# leaves the exception for it.
EXCEPTION_KEY = "api_analytics.exception"


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
            self._settings = recorder.settings
            # Called as each request starts, when the exchange is captured (else None).
            self._start: Callable | None = None
            if recorder.capture is not None:
                self._start = self._start_capture

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
        extra: Extra | None = None
        if self._start is not None:
            extra, receive, send = self._start(scope, receive, send, started)

        async def watch_send(message: Message) -> None:
            nonlocal status, finished, extra, send
            if status:
                # After the start: the response ends with the first message that does
                # not announce more body (the last body chunk, or a pathsend).
                if not (finished or message.get("more_body")):
                    finished = perf_counter()
            elif message["type"] == "http.response.start":
                status = message["status"]
                if status >= 400:
                    extra, send = self._error_status(scope, status, extra, send)
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
            if isinstance(exc, Exception):
                extra = capture.with_exception(extra, self._settings, exc)

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
                path, host, agent, ip, user_id, extra = self._map(
                    scope, path, host, agent, ip, extra
                )
            if extra is not None and self._start is not None:
                extra.settle()  # let go of the taps' objects now (capture.Captured)
            buffer = self._buffer
            # Client.add, inlined: one comparison guards the slow path.
            if len(buffer) >= self._client._slow_at:
                self._client._add_slowly(buffer)
            buffer.append(
                (started, finished or perf_counter(), scope["method"], path, status or 500,
                 host, agent, ip, user_id, extra)
            )  # fmt: skip
        except Exception as exc:  # never let recording break the host request
            self._warn_once("recording the request", type(exc).__name__)
        if failure is not None:
            try:
                raise failure
            finally:
                failure = None  # no reference cycle through the traceback

    def _start_capture(
        self, scope: Scope, receive: Receive, send: Send, started: float
    ) -> tuple[Extra, Receive, Send]:
        """Capture this exchange: its request's headers and query now, its bodies and the
        response's headers as they pass (never holding a chunk back)."""
        settings = self._settings
        headers = scope["headers"]
        query = scope.get("query_string", b"")
        content_type = length = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        extra = Extra(settings)
        sampled = extra.sampled = settings.sampled(scope["method"], scope["path"], query, started)
        # The scope's own list, not a copy (a middleware inside that edits the request's
        # headers edits what is logged too).
        side = extra.request = capture.request_side(settings, headers, query, content_type)
        if side is not None and side.body is True:
            side.size = length
            copy = side.want_body(settings, sampled, content_type)
            if copy is not None:
                receive = _receive_tap(receive, copy)
        answer = extra.response = capture.response_side(settings)
        if answer is not None:
            send = _SendTap(send, settings, answer, sampled)
        return extra, receive, send

    def _error_status(
        self, scope: Scope, status: int, extra: Extra | None, send: Send
    ) -> tuple[Extra | None, Send]:
        """At a 4xx or 5xx response start: keep a 400/422 body for its validation errors;
        take an exception the framework left in the scope."""
        if status in capture.VALIDATION_STATUSES:
            tap = send if type(send) is _SendTap else _SendTap(send)
            tap.error = BodyCopy(capture.ERROR_BODY_LIMIT)
            return capture.with_error_body(extra, self._settings, tap.error), tap
        if status >= 500:
            exc = scope.pop(EXCEPTION_KEY, None)
            if exc is not None:
                extra = capture.with_exception(extra, self._settings, exc)
        return extra, send

    def _map(self, scope: Scope, path: Any, host: Any, agent: Any, ip: Any, extra: Any) -> tuple:
        """Apply the user's mappers to a request object built from the scope."""
        return self._recorder.map(self.request_class(scope), path, host, agent, ip, extra)

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


def _receive_tap(receive: Receive, copy: BodyCopy) -> Receive:
    async def tapped() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            copy.add(message.get("body", b""))
        return message

    return tapped


class _SendTap:
    """`send`, copying the response as it passes: its headers and body when captured,
    the body of a 400/422 (`error`) for its validation errors."""

    __slots__ = ("send", "settings", "side", "sampled", "copy", "error")

    def __init__(
        self, send: Send, settings: Settings | None = None, side: Any = None, sampled: bool = False
    ) -> None:
        self.send = send
        self.settings = settings
        self.side = side
        self.sampled = sampled
        self.copy: BodyCopy | None = None
        self.error: BodyCopy | None = None

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body", b"")
            if self.copy is not None:
                self.copy.add(body)
            if self.error is not None:
                self.error.add(body)
        elif kind == "http.response.start" and self.side is not None:
            side = self.side
            headers = message.get("headers") or []
            if self.settings.response_headers:
                side.headers = headers
            if side.body is True:
                content_type = None
                for name, value in headers:
                    if name.lower() == b"content-type":
                        content_type = value
                        break
                self.copy = side.want_body(self.settings, self.sampled, content_type)
        elif kind == "http.response.pathsend" and self.side is not None:
            self.side.omitted = "streamed"  # a file the server sends itself
        await self.send(message)
