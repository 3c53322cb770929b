"""Capture helpers for the adapters that hook into their framework.

A request body copied as the app reads it, a request of a WSGI environ, and a request or
response the framework holds whole when the hook runs (Django, Tornado, aiohttp, Sanic,
Falcon).
"""

from __future__ import annotations

from typing import Any

from .capture import (
    ERROR_BODY_LIMIT,
    VALIDATION_STATUSES,
    BodyCopy,
    Extra,
    Settings,
    request_side,
    response_side,
    with_error_body,
)


def declared_length(value: Any) -> int | None:
    """A Content-Length header's value as a number, if it is one."""
    if isinstance(value, str | bytes) and value.isdigit():
        return int(value)
    return None


class CopyingReader:
    """A request body stream (WSGI's `wsgi.input`, Django's, Falcon's) that copies what
    the app reads from it into a `BodyCopy`; the app reads exactly what it would."""

    __slots__ = ("_stream", "_copy")

    def __init__(self, stream: Any, copy: BodyCopy) -> None:
        self._stream = stream
        self._copy = copy

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        data = self._stream.read(*args, **kwargs)
        self._copy.add(data)
        return data

    def readline(self, *args: Any, **kwargs: Any) -> bytes:
        data = self._stream.readline(*args, **kwargs)
        self._copy.add(data)
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines = self._stream.readlines(*args)
        for line in lines:
            self._copy.add(line)
        return lines

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:  # a stream with read() only, as WSGI requires (gunicorn's)
            data = self._stream.read(len(buffer))
            count = len(data)
            buffer[:count] = data
        else:
            count = readinto(buffer)
        if count:
            self._copy.add(memoryview(buffer)[:count])
        return count

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:  # close(), and whatever else a server adds
        return getattr(self._stream, name)


class AsyncCopyingReader:
    """CopyingReader for an awaitable stream (`falcon.asgi`'s request stream)."""

    __slots__ = ("_stream", "_copy")

    def __init__(self, stream: Any, copy: BodyCopy) -> None:
        self._stream = stream
        self._copy = copy

    async def read(self, *args: Any, **kwargs: Any) -> bytes:
        data = await self._stream.read(*args, **kwargs)
        self._copy.add(data)
        return data

    async def readall(self) -> bytes:
        data = await self._stream.readall()
        self._copy.add(data)
        return data

    async def __aiter__(self) -> Any:
        async for chunk in self._stream:
            self._copy.add(chunk)
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def environ_exchange(
    settings: Settings, environ: Any, method: Any, path: Any, started: float, stream: Any
) -> tuple[Extra, Any]:
    """An `Extra` for a request of a WSGI environ (or Django's META): its headers and
    query now, and the request body `stream` to read in its place (copying what the app
    reads), or None when the body is not kept."""
    extra = Extra(settings)
    query = environ.get("QUERY_STRING") or ""
    content_type = environ.get("CONTENT_TYPE")
    extra.sampled = settings.sampled(method, path, query, started)
    # A copy (the app may add to the environ), read by the flusher: a C-level copy here
    # rather than a loop over its keys on the request path.
    headers = environ.copy() if settings.request_headers else None
    side = extra.request = request_side(settings, headers, query, content_type)
    wrapped = None
    if side is not None and side.body is True:
        side.size = declared_length(environ.get("CONTENT_LENGTH"))
        copy = side.want_body(settings, extra.sampled, content_type)
        if copy is not None and stream is not None:
            wrapped = CopyingReader(stream, copy)
    extra.response = response_side(settings)
    return extra, wrapped


def whole_exchange(
    extra: Extra | None, settings: Settings, request: Any, started: float, query: Any,
    headers: Any, content_type: Any, body: Any,
) -> Extra:  # fmt: skip
    """`extra` (made if needed) with the request side of a framework that read the body
    whole before the handler ran (bytes; None leaves it to the caller), and a response
    side to fill (`whole_response`). `request` has the method and the path."""
    if extra is None:
        extra = Extra(settings)
    extra.sampled = settings.sampled(request.method, request.path, query, started)
    side = extra.request = request_side(settings, headers, query, content_type)
    if side is not None and side.body is True and body is not None:
        side.whole_body(settings, extra.sampled, content_type, body)
    extra.response = response_side(settings)
    return extra


def whole_response(
    extra: Extra, content_type: Any, headers: Any, body: Any, streamed: bool = False
) -> None:
    """Fill the response side of `extra` (if it has one) from a response held whole, or
    one that streams (its body then is not read)."""
    side = extra.response
    if side is None:
        return
    settings = extra.settings
    if settings.response_headers:
        side.headers = headers
    if side.body is True:
        if streamed:  # its size is not known here
            side.content_type, side.body, side.omitted = content_type, None, "streamed"
        else:
            side.whole_body(settings, extra.sampled, content_type, body)


def error_body(extra: Extra | None, settings: Settings, body: Any) -> Extra | None:
    """`extra` with a 400/422 response's body (bytes or str) kept for its validation
    errors, or as it was when there is none."""
    if not body:
        return extra
    if type(body) is str:
        body = body[:ERROR_BODY_LIMIT].encode("utf-8", "surrogateescape")
    elif not isinstance(body, bytes | bytearray):
        return extra  # a payload object (aiohttp): not a JSON answer we can read
    return with_error_body(extra, settings, body[:ERROR_BODY_LIMIT])


def answered(
    extra: Extra | None, settings: Settings, request: Any, started: float, status: int,
    query: Any, request_body: Any, response: Any, body: Any, streamed: bool,
) -> Extra | None:  # fmt: skip
    """What a response held whole adds to `extra`: a 400/422 body for its validation
    errors and, when captured, both sides. `request` and `response` have `headers` (a
    multidict: aiohttp's, Sanic's) and the response a `content_type`; no response (None:
    the framework answers an exception itself) leaves the response side out."""
    if status in VALIDATION_STATUSES and not streamed:
        extra = error_body(extra, settings, body)
    if not settings.capturing:
        return extra
    headers = request.headers
    extra = whole_exchange(
        extra, settings, request, started, query, list(headers.items()),
        headers.get("Content-Type"), request_body,
    )  # fmt: skip
    if response is None:
        extra.response = None
        return extra
    answer = list(response.headers.items())
    content_type = response.content_type
    if content_type and not any(name.lower() == "content-type" for name, _ in answer):
        answer.append(("content-type", content_type))  # the framework adds it at output
    whole_response(extra, content_type, answer, body, streamed)
    return extra
