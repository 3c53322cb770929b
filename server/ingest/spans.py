"""OpenTelemetry spans as logged requests: each HTTP server span of an OTLP export becomes
one ingest row in the shape the JSON clients send (docs/capture.md), so the pipeline
checks, enriches and stores it like any other (server.ingest.otlp).

Both generations of the HTTP semantic conventions are read, the current first (the
table is in README.md, OpenTelemetry): method, path, route template (`http.route`), status,
client address, user agent, host, start time and duration, the user (`enduser.id`), the
resource's `service.name` and `service.version`, and the span's exception event (else, for
a 5xx, the latest exception event of a span below it in the same export). A value of the
wrong type counts as absent. Spans that are not HTTP server spans are counted by kind and
left out.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from server.ingest import wire
from server.ingest.stacks import frames_of

SERVER, UNSPECIFIED = 2, 0
STATUS_ERROR = 2
KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer",
              5: "consumer"}  # fmt: skip
MAX_MESSAGE = 1024
MAX_TYPE = 255

# Each field's attributes, the current convention's first.
METHOD = ("http.request.method", "http.method")
PATH = ("url.path", "http.target")
FULL_URL = ("url.full", "http.url")
STATUS = ("http.response.status_code", "http.status_code")
# The client's address as the instrumentation found it (from Forwarded / X-Forwarded-For
# where it reads them), else the first of the X-Forwarded-For header the owner has the
# instrumentation capture (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST), else
# the peer's.
CLIENT = ("client.address", "http.client_ip", "http.request.header.x-forwarded-for",
          "http.request.header.x_forwarded_for", "network.peer.address", "net.sock.peer.addr",
          "net.peer.ip")  # fmt: skip
AGENT = ("user_agent.original", "http.user_agent")
HOST = ("server.address", "http.host", "net.host.name", "http.server_name")
# An unspecified kind is taken for an HTTP server's span when it has a method and one of
# these, which only a server's span carries.
SERVER_ONLY = ("http.route", "url.path", "http.target", "client.address", "http.client_ip",
               "net.host.name", "http.server_name")  # fmt: skip
# The attributes read, as text; any other attribute is never looked at.
TEXTS = frozenset((*METHOD, *PATH, *FULL_URL, *CLIENT, *AGENT, *HOST, *SERVER_ONLY, "enduser.id",
                   "http.request.method_original"))  # fmt: skip
NUMBERS = frozenset(STATUS)
RESOURCE = frozenset(("service.name", "service.version"))
EXCEPTION = frozenset(("exception.type", "exception.message", "exception.stacktrace"))


class SpanRows(list):
    """The rows, with what spans know that JSON rows do not, for the check step
    (server.ingest.columns): each row's start in epoch microseconds (`micros`), so that
    its text is not parsed back, and `labels`: for a row whose optional fields are only
    its resource's service and release and its route, those three as a key, so that each
    distinct set is checked once rather than on every row (None: the row's optional fields
    are checked alone). Both cut an export's CPU in the web (bench/README.md, OTLP)."""

    __slots__ = ("micros", "labels")

    def __init__(self) -> None:
        super().__init__()
        self.micros: list[int] = []
        self.labels: list[tuple | None] = []


@dataclass
class Spans:
    """An export's HTTP server spans as ingest rows, and what was left out."""

    rows: SpanRows = field(default_factory=SpanRows)
    # Each row's span, to name it in a refusal.
    spans: list = field(default_factory=list)
    total: int = 0
    ignored: Counter = field(default_factory=Counter)  # kind name -> spans left out

    def name(self, index: int) -> str:
        span = self.spans[index]
        return f"span {span.span_id.hex() or '(no id)'} ({span.name[:60]!r})"


def rows_of(request) -> Spans:
    """The rows of an export's HTTP server spans, in order (`request` as server.ingest.wire
    parses it)."""
    found = Spans()
    rows, spans, read = found.rows, found.spans, wire.attributes
    late = []  # non-server spans with exception events: maybe a server span's exception
    parents = {}  # non-server spans' parents, to walk from those up to a server span
    for resource_spans in request.resource_spans:
        resource = wire.attributes(resource_spans.resource.attributes, RESOURCE)
        labels = {}
        for name, attribute in (("service", "service.name"), ("release", "service.version")):
            value = _text(resource, attribute)
            if value:
                labels[name] = value
        named = (labels.get("service"), labels.get("release"))
        for scope_spans in resource_spans.scope_spans:
            found.total += len(scope_spans.spans)
            for span in scope_spans.spans:
                attributes = read(span.attributes, TEXTS, NUMBERS)
                kind = span.kind
                method = attributes.get("http.request.method") or attributes.get("http.method")
                if kind != SERVER and not (
                    kind == UNSPECIFIED and method and _any(attributes, SERVER_ONLY)
                ):
                    found.ignored[KIND_NAMES.get(kind, "unknown")] += 1
                    parents[span.span_id] = span.parent_span_id
                    if span.events:
                        late.append(span)
                    continue
                if not method:
                    found.ignored["server, not HTTP"] += 1
                    continue
                rows.append(_row(span, attributes, method, labels, rows, named))
                spans.append(span)
    if late:
        _exceptions_from_below(found, late, parents)
    return found


def _row(span, attributes: dict, method: str, labels: dict, rows: SpanRows, named: tuple) -> dict:
    """The span's row; its start and label key go to `rows` (SpanRows). Each field takes
    the current convention's attribute inline, the others through a function: this runs
    for every span of every export."""
    get = attributes.get
    if method == "_OTHER":  # the current convention's name for a method it does not know
        method = get("http.request.method_original") or method
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    status = get("http.response.status_code") or get("http.status_code")
    if not status and span.status and wire.status_code(span) == STATUS_ERROR:
        status = 500  # failed before it answered: as our clients record it
    stamp = start // 1000
    minute, micros = divmod(stamp, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    row = {
        "created_at": f"{_MINUTES.get(minute) or _minute(minute)}{_SECONDS[seconds]}"
        f"{str(1_000_000 + micros)[1:]}+00:00"
        if minute < _LAST_MINUTE
        else None,
        "hostname": get("server.address") or _host(attributes),
        "path": get("url.path") or _path(attributes),
        "method": method if method.isupper() else method.upper(),
        "status": status or None,
        # Whole milliseconds, rounded; negative when the span ends before it starts.
        "response_time": (end - start + 500_000) // 1_000_000,
        "ip_address": get("client.address") or _text_of(attributes, CLIENT),
        "user_agent": get("user_agent.original") or get("http.user_agent") or None,
        "user_id": get("enduser.id") or None,
        **labels,
    }
    rows.micros.append(stamp)
    route = get("http.route")
    if route:
        route = row["route"] = route[:255]
    if span.events:
        exception = _exception(wire.events(span))
        if exception:
            row["exception"] = exception
            rows.labels.append(None)
            return row
    rows.labels.append((*named, route or None))
    return row


def _text(attributes: dict, name: str) -> str | None:
    return attributes.get(name) or None


def _text_of(attributes: dict, names: tuple) -> str | None:
    for name in names:
        value = _text(attributes, name)
        if value:
            return value
    return None


def _any(attributes: dict, names: tuple) -> bool:
    return any(name in attributes for name in names)


def _path(attributes: dict) -> str | None:
    path = _text(attributes, "url.path")
    if path:
        return path
    target = _text(attributes, "http.target")
    if target:
        return target.split("?", 1)[0] or "/"
    full = _text_of(attributes, FULL_URL)
    if full:
        try:
            return urlsplit(full).path or "/"
        except ValueError:
            return None
    return None


def _host(attributes: dict) -> str | None:
    """The host the client asked for, without its port."""
    host = _text_of(attributes, HOST)
    return _without_port(host) if host else _url_host(attributes)


def _url_host(attributes: dict) -> str | None:
    full = _text_of(attributes, FULL_URL)
    if not full:
        return None
    try:
        return urlsplit(full).hostname
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def _without_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8000
        return host[1:].split("]", 1)[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else host


# A span's start as the JSON clients write a time (UTC, to the microsecond): each minute's
# text made once (spans of an export fall in a few minutes; a text per second was a third
# of a span's row, bench/README.md). A start past the year 9999 has no such text, and its
# row is refused as having none.
_MINUTES: dict[int, str] = {}
_SECONDS = [f"{second:02d}." for second in range(60)]
_LAST_MINUTE = 253402300800 // 60  # 10000-01-01


def _minute(minute: int) -> str:
    if len(_MINUTES) >= 10_000:
        _MINUTES.clear()
    text = _MINUTES[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return text


def _exception(events) -> dict | None:
    """The span's last exception event, in the shape of docs/capture.md."""
    for event in reversed(events):
        if event.name != "exception":
            continue
        attributes = {pair.key: pair.value.string_value for pair in event.attributes
                      if pair.key in EXCEPTION}  # fmt: skip
        kind = _text(attributes, "exception.type")
        message = _text(attributes, "exception.message")
        if not (kind or message):
            continue
        return {
            "type": (kind or "Error")[:MAX_TYPE],
            "message": message[:MAX_MESSAGE] if message else None,
            "stack": frames_of(_text(attributes, "exception.stacktrace")),
        }
    return None


def _exceptions_from_below(found: Spans, late: list, parents: dict) -> None:
    """A 5xx row without an exception of its own takes the latest exception event of a
    span below its server span in this export (frameworks such as Express record the
    error on the handler's span): walked up by parent span id, a few levels at most."""
    wanting = {
        span.span_id: index
        for index, span in enumerate(found.spans)
        if (found.rows[index]["status"] or 0) >= 500 and "exception" not in found.rows[index]
    }
    if not wanting:
        return
    best: dict[int, tuple[int, dict]] = {}
    for span in late:
        exception = _exception(wire.events(span))
        if exception is None:
            continue
        parent = span.parent_span_id
        for _ in range(32):
            if parent in wanting:
                index = wanting[parent]
                if index not in best or span.end_time_unix_nano > best[index][0]:
                    best[index] = (span.end_time_unix_nano, exception)
                break
            parent = parents.get(parent)
            if parent is None:
                break
    for index, (_end, exception) in best.items():
        found.rows[index]["exception"] = exception
        found.rows.labels[index] = None  # no longer labels only
