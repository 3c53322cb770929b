"""OTLP trace exports built for tests: spans with any attributes, kinds, events and times,
as protobuf messages, and as OTLP's JSON (hex ids, lowerCamelCase, enums as integers)."""

from __future__ import annotations

import base64
import itertools
import time

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

INTERNAL, SERVER, CLIENT, CONSUMER = 1, 2, 3, 5
STATUS_ERROR = 2
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
# One request in each generation of the HTTP semantic conventions.
OLD = {
    "http.method": "GET",
    "http.target": "/v1/orders/42?page=2",
    "http.status_code": 200,
    "net.peer.ip": "8.8.8.8",
    "http.user_agent": AGENT,
    "http.host": "api.example.com:8443",
    "http.route": "/v1/orders/{order_id}",
    "http.scheme": "https",
}
NEW = {
    "http.request.method": "GET",
    "url.path": "/v1/orders/42",
    "url.query": "page=2",
    "http.response.status_code": 200,
    "client.address": "8.8.8.8",
    "user_agent.original": AGENT,
    "server.address": "api.example.com",
    "server.port": 8443,
    "http.route": "/v1/orders/{order_id}",
    "url.scheme": "https",
}
_ids = itertools.count(1)


def value(v) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        found = AnyValue()
        found.array_value.values.extend(value(x) for x in v)
        return found
    if isinstance(v, dict):
        found = AnyValue()
        found.kvlist_value.values.extend(attributes(v))
        return found
    return AnyValue(string_value=v)


def attributes(pairs: dict) -> list:
    return [KeyValue(key=k, value=value(v)) for k, v in pairs.items()]


def span_id() -> bytes:
    return next(_ids).to_bytes(8, "big")


def span(
    attrs: dict,
    *,
    kind: int = SERVER,
    name: str = "GET /v1/orders/{order_id}",
    start_ns: int | None = None,
    duration_ms: float = 12.0,
    events: list | None = None,
    status: int = 0,
    trace: bytes = b"\x01" * 16,
    own_id: bytes | None = None,
    parent: bytes = b"",
) -> Span:
    start = time.time_ns() - 60 * 10**9 if start_ns is None else start_ns
    found = Span(
        trace_id=trace,
        span_id=own_id or span_id(),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(duration_ms * 1_000_000),
        attributes=attributes(attrs),
    )
    found.status.code = status
    for event_name, event_attrs in events or []:
        found.events.add(name=event_name, time_unix_nano=start, attributes=attributes(event_attrs))
    return found


def resource(spans: list, service: str | None = "shop", version: str | None = "1.4.2",
             **extra) -> ResourceSpans:  # fmt: skip
    pairs = {"telemetry.sdk.language": "python", **extra}
    if service:
        pairs["service.name"] = service
    if version:
        pairs["service.version"] = version
    found = ResourceSpans()
    found.resource.attributes.extend(attributes(pairs))
    scope = found.scope_spans.add()
    scope.scope.name = "tests.otlp"
    scope.spans.extend(spans)
    return found


def export(*resources: ResourceSpans) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=list(resources))


def as_json(request: ExportTraceServiceRequest) -> dict:
    """OTLP's JSON of a request: hex ids where protobuf's JSON has base64, enums as ints."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for item in scope_spans.get("spans", []):
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in item:
                        item[name] = base64.b64decode(item[name]).hex()
    return document


def response_of(body: bytes, json_body: bool = False) -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if json_body:
        return json_format.Parse(body, response)
    response.ParseFromString(body)
    return response
