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

from .capture import (
    ERROR_BODY_LIMIT,
    VALIDATION_STATUS_LINES,
    BodyCopy,
    Extra,
    with_error_body,
    with_exception,
)
from .exchange import declared_length, environ_exchange
from .recorder import Recorder

# Where an adapter that hooks into its framework's request handling (Flask's teardown and
# exception signal) leaves, for `close()`, the mapped (path, hostname, user_agent,
# ip_address, user_id) or None, and an `Extra` or None: a pair.
HOOKED_KEY = "api_analytics.hooked"

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
        self.exchange = _Exchange if recorder.capture is None else _CapturedExchange

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        exchange = self.exchange(self.recorder, environ, start_response)
        try:
            body = self.app(environ, exchange)
        except Exception as exc:
            exchange.extra = with_exception(exchange.extra, self.recorder.settings, exc)
            exchange.record(perf_counter(), 500)  # the server answers 500 (or cuts off)
            raise
        return exchange.wrap(body)


class _Exchange:
    """One request: its `start_response` (to catch the status) and its response body."""

    __slots__ = (
        "recorder", "environ", "start_response", "started", "status", "body", "inner_close",
        "failed", "done", "extra", "copies",
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
        self.extra: Extra | None = None
        self.copies: tuple[BodyCopy, ...] | None = None  # what copies the body as it passes

    def __call__(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        """The app's `start_response`: the status line is kept as it is (the flusher
        parses it)."""
        self.status = status
        if exc_info is None:
            return self.start_response(status, headers)
        return self.start_response(status, headers, exc_info)

    def wrap(self, body: Iterable[bytes]) -> Iterable[bytes]:
        self.inner_close = getattr(body, "close", None)
        status = self.status
        if status is not None and status[:3] in VALIDATION_STATUS_LINES:
            error = BodyCopy(ERROR_BODY_LIMIT)  # for its validation errors
            self.extra = with_error_body(self.extra, self.recorder.settings, error)
            self.copies = (error,) if self.copies is None else (*self.copies, error)
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
            if self.copies is None:
                yield from self.body
            else:
                copies = self.copies
                for chunk in self.body:
                    for copy in copies:
                        copy.add(chunk)
                    yield chunk
        except Exception as exc:
            self.failed = True  # the client got a cut-off response
            self.extra = with_exception(self.extra, self.recorder.settings, exc)
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
            extra = self.extra
            hooked = environ.get(HOOKED_KEY)
            if hooked is None or hooked[0] is None:
                path, host, agent, ip = environ_fields(environ, recorder.privacy)
                user_id = None
            else:
                path, host, agent, ip, user_id = hooked[0]
            if hooked is not None and hooked[1] is not None:
                extra = hooked[1].merge(extra)
            if extra is not None:
                extra.settle()  # let go of the taps' objects now (capture.Captured)
            recorder.add(
                (self.started, finished, environ.get("REQUEST_METHOD"), path, status or 500,
                 host, agent, ip, user_id, extra)
            )  # fmt: skip
        except Exception as exc:  # never let recording break the host request
            recorder.warn_once("recording the request", type(exc).__name__)


class _CapturedExchange(_Exchange):
    """An exchange whose request and response are captured: the request's headers and
    query, its body as the app reads it, the response's headers and body as they pass."""

    __slots__ = ("headers",)

    def __init__(self, recorder: Recorder, environ: Environ, start_response: StartResponse):
        super().__init__(recorder, environ, start_response)
        self.headers: list | None = None
        self.extra, stream = environ_exchange(
            recorder.settings, environ, environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
            self.started, environ.get("wsgi.input"),
        )  # fmt: skip
        if stream is not None:
            environ["wsgi.input"] = stream
        # The framework's hooks (Flask's) fill in this same Extra: nothing to merge.
        environ[HOOKED_KEY] = (None, self.extra)

    def __call__(self, status: str, headers: list, exc_info: Any = None) -> Callable:
        self.headers = headers
        return super().__call__(status, headers, exc_info)

    def wrap(self, body: Iterable[bytes]) -> Iterable[bytes]:
        side = self.extra.response if self.extra is not None else None
        if side is not None:
            headers = self.headers or []
            if self.recorder.settings.response_headers:
                side.headers = list(headers)
            if side.body is True:
                found = {name.lower(): value for name, value in headers}
                content_type = found.get("content-type")
                copy = side.want_body(self.recorder.settings, self.extra.sampled, content_type)
                file_wrapper = self.environ.get("wsgi.file_wrapper")
                if file_wrapper is not None and type(body) is file_wrapper:
                    side.omitted = "streamed"  # the server sends the file: never read here
                    side.size = declared_length(found.get("content-length"))
                elif copy is not None:
                    self.copies = (copy,)
        return super().wrap(body)
