"""The WSGI request path (Flask): the clock stops when the server closes the response.

PEP 3333 servers (gunicorn, `flask run`, wsgiref) call the response iterable's `close()`
once the last byte of the body was handed to the client, so a streamed response is
timed to its end. A file response the server sends with `wsgi.file_wrapper` (sendfile)
is not wrapped, only its `close` is watched, so it keeps the server's fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from typing import Any

from .recorder import Recorder

# Where an adapter that maps inside its framework's request context (Flask's teardown)
# leaves the mapped (path, hostname, user_agent, ip_address, user_id) for `close()`.
MAPPED_KEY = "api_analytics.mapped"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def environ_fields(environ: Environ, privacy: int) -> tuple:
    """The default (path, hostname, user_agent, ip_address) of a request: WSGI's own
    values, read as they are (the flusher parses the Host header)."""
    path = environ.get("PATH_INFO") or "/"
    if not path.isascii():
        # WSGI strings carry the URL's bytes as latin-1; paths are UTF-8 (as werkzeug reads).
        path = path.encode("latin-1", "replace").decode("utf-8", "replace")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
    if host is not None:
        host = host.encode("latin-1", "replace")
    ip = environ.get("REMOTE_ADDR") if privacy != 2 else None
    return path, host, environ.get("HTTP_USER_AGENT"), ip


class WSGIAnalytics:
    """Wraps a WSGI app; records each request when the server closes its response."""

    def __init__(self, app: WSGIApp, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        exchange = _Exchange(self.recorder, environ, start_response)
        try:
            body = self.app(environ, exchange)
        except Exception:
            exchange.record(perf_counter(), 500)  # the server answers 500 (or cuts off)
            raise
        return exchange.wrap(body)


class _Exchange:
    """One request: its `start_response` (to catch the status) and its response body."""

    __slots__ = (
        "recorder", "environ", "start_response", "started", "status", "body", "inner_close",
        "failed", "done",
    )  # fmt: skip

    def __init__(self, recorder: Recorder, environ: Environ, start_response: StartResponse):
        self.started = perf_counter()
        self.recorder = recorder
        self.environ = environ
        self.start_response = start_response
        self.status: str | None = None
        self.body: Iterable[bytes] = ()
        self.inner_close: Callable[[], Any] | None = None
        self.failed = False
        self.done = False

    def __call__(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        """The app's `start_response`: the status line is kept as it is (the flusher
        parses it)."""
        self.status = status
        if exc_info is None:
            return self.start_response(status, headers)
        return self.start_response(status, headers, exc_info)

    def wrap(self, body: Iterable[bytes]) -> Iterable[bytes]:
        self.inner_close = getattr(body, "close", None)
        file_wrapper = self.environ.get("wsgi.file_wrapper")
        if file_wrapper is not None and type(body) is file_wrapper:
            try:
                body.close = self.close  # type: ignore[attr-defined]
                return body
            except AttributeError:  # a wrapper with slots: iterate it like any body
                pass
        self.body = body
        return self

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        except Exception:
            self.failed = True  # the client got a cut-off response
            raise

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        finished = perf_counter()
        try:
            if self.inner_close is not None:
                self.inner_close()  # Flask's teardown (and so its mappers) may run here
        finally:
            self.record(finished, 500 if self.failed else self.status)

    def record(self, finished: float, status: Any) -> None:
        recorder = self.recorder
        environ = self.environ
        try:
            mapped = environ.get(MAPPED_KEY)
            if mapped is None:
                path, host, agent, ip = environ_fields(environ, recorder.privacy)
                user_id = None
            else:
                path, host, agent, ip, user_id = mapped
            recorder.add(
                (self.started, finished, environ.get("REQUEST_METHOD"), path, status or 500,
                 host, agent, ip, user_id)
            )  # fmt: skip
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the request", type(exc).__name__)
