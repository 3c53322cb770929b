"""What the request path keeps for the optional fields of docs/capture.md.

Only references and raw bytes are kept here: the settings of a `Config`, one `Extra` per
request that has anything to add (an exception, an error body, a consumer, a captured
request or response), body copies taken as the bytes pass, the sampling decision, and an
exception's stack read without keeping its frames. Decoding, parsing, masking and JSON
are the flusher's (`api_analytics.extras`).
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

DEFAULT_BODY_MAX = 16 * 1024
MAX_BODY_MAX = 64 * 1024  # what the server accepts of a body
ERROR_BODY_LIMIT = 64 * 1024  # of a 400 or 422 body, read for its validation errors
VALIDATION_STATUSES = (400, 422)
VALIDATION_STATUS_LINES = ("400", "422")  # a WSGI status line's first three characters
MAX_FRAMES = 50
MAX_MESSAGE = 1024
CAPTURE_FLAGS = ("log_request_headers", "log_request_body", "log_response_headers",
                 "log_response_body")  # fmt: skip
MASK_LISTS = ("mask_headers", "mask_body_fields", "mask_query_params")
_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "application/xml")


class Settings:
    """One `Config`'s capture settings, checked; every `Extra` of its recorder points here.

    `capturing` is whether any request or response part is logged: when it is not, the
    adapters do nothing for capture on the request path.
    """

    __slots__ = (
        "exceptions", "request_headers", "request_body", "response_headers", "response_body",
        "body_max", "sample_rate", "header_masks", "field_masks", "query_masks", "mask_body",
        "capturing", "warned", "header_names", "environ_names", "header_values",
    )  # fmt: skip

    def __init__(self, config: Any) -> None:
        for name in ("capture_exceptions", *CAPTURE_FLAGS):
            if not isinstance(getattr(config, name), bool):
                raise ValueError(f"{name} must be True or False")
        body_max = config.body_max_bytes
        if isinstance(body_max, bool) or not isinstance(body_max, int):
            raise ValueError("body_max_bytes must be an integer")
        if not 1 <= body_max <= MAX_BODY_MAX:
            raise ValueError(f"body_max_bytes must be between 1 and {MAX_BODY_MAX}")
        rate = config.body_sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ValueError("body_sample_rate must be a number from 0 to 1")
        if config.mask_body is not None and not callable(config.mask_body):
            raise ValueError("mask_body must be a function (kind, body) or None")
        self.exceptions: bool = config.capture_exceptions
        self.request_headers: bool = config.log_request_headers
        self.request_body: bool = config.log_request_body
        self.response_headers: bool = config.log_response_headers
        self.response_body: bool = config.log_response_body
        self.body_max: int = body_max
        self.sample_rate = float(rate)
        self.header_masks = _patterns(config, "mask_headers")
        self.field_masks = _patterns(config, "mask_body_fields")
        self.query_masks = _patterns(config, "mask_query_params")
        self.mask_body: Callable[[str, str], str | None] | None = config.mask_body
        self.capturing = any(getattr(config, name) for name in CAPTURE_FLAGS)
        self.warned: set[str] = set()  # what the flusher logged once already
        # A header name as sent -> (its lower-cased name, whether its value is masked):
        # names repeat from request to request, so the flusher decides each once.
        self.header_names: dict[Any, tuple[str, bool]] = {}
        self.environ_names: dict[str, tuple[str, bool]] = {}  # the same, of environs
        self.header_values: dict[Any, str] = {}  # an unmasked value -> its JSON string

    def sampled(self, method: Any, path: Any, query: Any, started: float) -> bool:
        """Whether this request's bodies are kept: the same request (method, path, query
        and start time) always decides the same way, for its request and its response."""
        rate = self.sample_rate
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        key = f"{method}\x00{path}\x00{query}\x00{started!r}".encode("utf-8", "surrogateescape")
        return zlib.crc32(key) < rate * 4294967296.0


def _patterns(config: Any, name: str) -> tuple[re.Pattern, ...]:
    value = getattr(config, name)
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"{name} must be a list of regular expressions")
    compiled = []
    for pattern in value:
        try:
            # The names are matched lower-cased; the flag lets "X-Session" match too.
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except (re.error, TypeError) as exc:
            raise ValueError(f"{name}: {pattern!r} is not a regular expression ({exc})") from None
    return tuple(compiled)


def is_text(content_type: Any) -> bool:
    """Whether a body of this Content-Type (str, bytes or None) is logged as text."""
    if not content_type:
        return False
    found = _text_types.get(content_type)
    if found is None:
        text = content_type if type(content_type) is str else bytes(content_type).decode("latin-1")
        kind = text.partition(";")[0].strip().lower()
        found = (
            kind.startswith("text/")
            or kind in _TEXT_TYPES
            or kind.endswith("+json")
            or kind.endswith("+xml")
        )
        if len(_text_types) >= 1024:
            _text_types.clear()
        _text_types[content_type] = found
    return found


_text_types: dict[Any, bool] = {}  # an API answers with a few content types: decided once


class BodyCopy:
    """The first `limit` bytes of a body, copied as its chunks pass, and its whole size."""

    __slots__ = ("limit", "parts", "kept", "size", "chunks")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.kept = 0
        self.size = 0
        self.chunks = 0  # non-empty chunks: more than one is a streamed body

    def add(self, chunk: Any) -> None:
        count = len(chunk)
        if not count:
            return
        self.size += count
        self.chunks += 1
        room = self.limit - self.kept
        if room > 0:
            part = chunk if count <= room else chunk[:room]
            part = part if type(part) is bytes else bytes(part)  # bytes are not copied
            self.parts.append(part)
            self.kept += len(part)

    def data(self) -> bytes:
        parts = self.parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


# One side of the exchange as it waits for the flusher (`Side.settle`): a plain tuple of
# (headers, query, content_type, body, copied, chunks, size, omitted), where headers are a
# tuple of pairs, a WSGI environ (a dict) or None; body the copied bytes, or Side.body when
# no copy was taken; copied the size of the whole body that went by the copy. Atomic
# values and tuples of them only: the garbage collector stops tracking such a tuple at its
# first pass. A `Side` with its `BodyCopy` and the framework's header list, held until
# the next flush, added a dozen tracked objects a captured request to every collection
# (bench/README.md, "The capture path's cost").
Captured = tuple


class Side:
    """One side of the exchange (the request or the response) as captured.

    `headers` is None when they are not logged; `body` is False when the body is not
    logged at all, True while it is still to be decided (`want_body`, `whole_body`),
    then a `BodyCopy`, or None with `omitted` saying why there is none.
    """

    __slots__ = ("headers", "query", "content_type", "body", "size", "omitted")

    def __init__(self) -> None:
        self.headers: list | None = None
        self.query: Any = None
        self.content_type: Any = None
        self.body: BodyCopy | bool | None = False
        self.size: int | None = None  # the whole size when declared (Content-Length)
        self.omitted: str | None = None

    def want_body(self, settings: Settings, sampled: bool, content_type: Any) -> BodyCopy | None:
        """Decide what to keep of the body: a copy to fill (a text body, sampled in), or a
        counter only (a binary one), or nothing (sampled out)."""
        self.content_type = content_type
        if not sampled:
            self.body, self.omitted = None, "sampled_out"
            return None
        if is_text(content_type):
            self.body = BodyCopy(settings.body_max)
        else:
            self.body, self.omitted = BodyCopy(0), "binary"
        return self.body

    def settle(self) -> Captured:
        """What the flusher needs of this side, once the exchange is over."""
        headers = self.headers
        if type(headers) is list:
            headers = tuple(headers)
        elif type(headers) is dict:  # a WSGI environ's copy: its headers, not its streams
            headers = {k: v for k, v in headers.items() if k[:5] == "HTTP_" or k[:8] == "CONTENT_"}
        body = self.body
        if type(body) is BodyCopy:
            return (headers, self.query, self.content_type, body.data(), body.size,
                    body.chunks, self.size, self.omitted)  # fmt: skip
        return (headers, self.query, self.content_type, body, 0, 0, self.size, self.omitted)

    def whole_body(self, settings: Settings, sampled: bool, content_type: Any, data: Any) -> None:
        """A body the framework holds whole (bytes, or a str, or None for none)."""
        copy = self.want_body(settings, sampled, content_type)
        if copy is not None and data:
            copy.add(data.encode("utf-8", "surrogateescape") if type(data) is str else data)


def request_side(settings: Settings, headers: Any, query: Any, content_type: Any) -> Side | None:
    """The request side of a captured exchange, or None when no part of it is logged.
    The caller fills in the body (`want_body` or `whole_body`) if `side.body` is True."""
    if not (settings.request_headers or settings.request_body):
        return None
    side = Side()
    if settings.request_headers:
        side.headers = headers
    side.query = query
    side.content_type = content_type
    side.body = settings.request_body
    return side


def response_side(settings: Settings) -> Side | None:
    if not (settings.response_headers or settings.response_body):
        return None
    side = Side()
    if settings.response_body:
        side.body = True
    return side


class Extra:
    """What one request adds to its row; the flusher turns it into the optional fields."""

    __slots__ = ("settings", "exception", "validation", "error_body", "consumer", "request",
                 "response", "sampled", "text")  # fmt: skip

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.text: str | None = None  # the fields as JSON, once the flusher formatted them
        self.sampled = True  # whether the bodies are kept: decided once for both sides
        self.exception: tuple | None = None  # exception_info()
        self.validation: Any = None  # a framework's own error data (DRF's response.data)
        self.error_body: Any = None  # a 400/422 body: bytes or a BodyCopy
        self.consumer: Any = None
        self.request: Side | Captured | None = None
        self.response: Side | Captured | None = None

    def settle(self) -> Extra:
        """Let go of what the request path used to capture (see `Captured`): called as
        the request is recorded, or by the flusher."""
        side = self.request
        if side is not None and type(side) is Side:
            self.request = side.settle()
        side = self.response
        if side is not None and type(side) is Side:
            self.response = side.settle()
        if type(self.error_body) is BodyCopy:
            self.error_body = self.error_body.data()
        return self

    def merge(self, other: Extra | None) -> Extra:
        """This one, completed by what `other` holds that it does not."""
        if other is not None and other is not self:  # one Extra from two hooks is common
            for name in Extra.__slots__[:-2]:
                if getattr(self, name) is None:
                    setattr(self, name, getattr(other, name))
        return self


def with_exception(
    extra: Extra | None, settings: Settings, exc: BaseException | None, info: tuple | None = None
) -> Extra | None:
    """`extra` (made if needed) holding the exception (or its `info`, read already), if
    exceptions are captured."""
    if not settings.exceptions or (exc is None and info is None):
        return extra
    if extra is None:
        extra = Extra(settings)
    if extra.exception is None:
        extra.exception = info if info is not None else exception_info(exc)  # type: ignore[arg-type]
    return extra


def with_error_body(extra: Extra | None, settings: Settings, body: Any) -> Extra:
    """`extra` (made if needed) holding a 400/422 body or error data to parse later."""
    if extra is None:
        extra = Extra(settings)
    if body is not None:
        extra.error_body = body
    return extra


def with_consumer(extra: Extra | None, settings: Settings, consumer: Any) -> Extra | None:
    if consumer is None:
        return extra
    if extra is None:
        extra = Extra(settings)
    extra.consumer = consumer
    return extra


def exception_info(exc: BaseException) -> tuple:
    """(type, message, frames) of an exception, frames as (file, line, function) from its
    traceback, oldest first and at most the last MAX_FRAMES: read now, so that neither the
    exception nor its frames (and their locals) outlive the request."""
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the exception
        message = ""
    frames: deque[tuple] = deque(maxlen=MAX_FRAMES)
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        line = tb.tb_lineno
        frames.append((code.co_filename, line if type(line) is int and line >= 0 else 0,
                       code.co_name))  # fmt: skip
        tb = tb.tb_next
    return name, message[:MAX_MESSAGE] or None, list(frames)
