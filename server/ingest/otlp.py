"""OpenTelemetry traces in, over OTLP/HTTP (README.md, OpenTelemetry): an export's body read
and decoded (protobuf, or OTLP's JSON), its HTTP server spans made ingest rows
(server.ingest.spans) and stored through the same pipeline as the JSON clients' batches
(server.ingest.pipeline.run: checked, enriched and stored before the answer), and the answer
the OTLP specification asks for: an ExportTraceServiceResponse whose partial success names
the spans refused and why, or a google.rpc.Status for a refused export.

An exporter sends the same body again when it saw no answer (a timeout, a 429, a 503): the
export's Idempotency-Key is the digest of its decoded body, so a retry is answered from
the first one's receipt and nothing is stored twice. What is HTTP (headers, the key, the
rate limit) stays in server.api.otlp.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from server.ingest import pipeline, wire
from server.ingest.fields import PayloadError
from server.ingest.spans import Spans, rows_of

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# What a request's Content-Type may say, and how its body is read and answered.
CONTENT_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}
FRAMEWORK = "OpenTelemetry"
# google.rpc.Code for each HTTP status we answer an export with (the OTLP specification
# leaves Status.code optional; exporters log the message).
CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED,
         413: code_pb2.INVALID_ARGUMENT, 415: code_pb2.INVALID_ARGUMENT,
         429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE}  # fmt: skip
# Refusals named in the answer; the count covers them all.
NAMED_REFUSALS = 5
# The row fields' sources, to name them in a refusal (README.md, OpenTelemetry).
SOURCES = {
    "created_at": "start_time_unix_nano",
    "method": "http.request.method / http.method",
    "path": "url.path / http.target / url.full",
    "status": "http.response.status_code / http.status_code",
    "response_time": "end_time_unix_nano - start_time_unix_nano",
    "hostname": "server.address / http.host",
    "user_agent": "user_agent.original / http.user_agent",
    "user_id": "enduser.id",
    "service": "service.name",
    "release": "service.version",
    "route": "http.route",
}


@dataclass
class Answer:
    """What to answer an export: `status`, and the message (a response or a Status)."""

    status: int
    message: object
    replayed: bool = False
    headers: dict | None = None
    spans: Spans | None = None
    # What was stored: the rows' payload and the pipeline's answer (ingest health counts
    # them, as it counts the JSON clients' batches); None when nothing was run.
    stored: tuple[dict, dict] | None = None


def failure(status: int, message: str, headers: dict | None = None) -> Answer:
    """A refused export: a google.rpc.Status naming the problem."""
    return Answer(status, status_pb2.Status(code=CODES.get(status, 0), message=message),
                  headers=headers)  # fmt: skip


def encode(answer: Answer, content_type: str) -> bytes:
    """The answer's body in the request's encoding (JSON for a type we do not take)."""
    if content_type == PROTOBUF:
        return answer.message.SerializeToString()
    return json_format.MessageToJson(answer.message, indent=None).encode()


def read(body: bytes, content_type: str, encoding: str, max_body: int):
    """The read and parse steps: the export (as server.ingest.wire parses it) and its
    decoded body; raises PayloadError. OTLP's JSON is read into the official classes, then
    taken as the protobuf it stands for."""
    if encoding == "gzip":
        body = pipeline.inflate(body, max_body)
    elif encoding not in ("", "identity"):
        raise PayloadError(
            415, f"Content-Encoding {encoding!r} is not supported; use gzip or none."
        )
    if content_type == PROTOBUF:
        try:
            return wire.parse(body), body
        except DecodeError as exc:
            raise PayloadError(
                400, f"Not a valid OTLP protobuf ExportTraceServiceRequest: {exc}."
            ) from None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, f"Malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PayloadError(400, "The body must be a JSON object (an ExportTraceServiceRequest).")
    _ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise PayloadError(400, f"Not a valid OTLP JSON ExportTraceServiceRequest: {exc}") from None
    return wire.parse(request.SerializeToString()), body


def _ids_to_base64(document: dict) -> None:
    """OTLP's JSON writes trace and span ids in hex, where protobuf's JSON expects base64."""
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _hex_ids(span)
                for link in _list(span, "links"):
                    _hex_ids(link)


def _list(parent, *names) -> list:
    if not isinstance(parent, dict):
        return []
    for name in names:
        value = parent.get(name)
        if isinstance(value, list):
            return value
    return []


def _hex_ids(item) -> None:
    if not isinstance(item, dict):
        return
    for name in ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"):
        value = item.get(name)
        if isinstance(value, str) and value:
            try:
                item[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise PayloadError(400, f"{name} {value[:40]!r} is not hex.") from None


def export(engine, request, body: bytes, key_id: int, *, privacy_level: int,
           max_batch: int) -> Answer:  # fmt: skip
    """Store an export's HTTP server spans through the pipeline; the OTLP answer."""
    spans = rows_of(request)
    if len(spans.rows) > max_batch:
        raise PayloadError(
            413, f"Too many HTTP server spans: {len(spans.rows)} in one export, the limit "
            f"is {max_batch}. Send smaller batches (OTEL_BSP_MAX_EXPORT_BATCH_SIZE).",
        )  # fmt: skip
    if not spans.rows:
        return Answer(200, _response(spans, []), spans=spans)
    payload = {"requests": spans.rows, "privacy_level": privacy_level, "framework": FRAMEWORK}
    outcome = pipeline.run(engine, payload, key_id, idempotency_key(body, privacy_level))
    log.debug("OTLP export: %s spans, %s rows, %s left out", spans.total, len(spans.rows),
              sum(spans.ignored.values()))  # fmt: skip
    rejected = outcome.body["rejected"]
    return Answer(200, _response(spans, rejected), replayed=outcome.replayed, spans=spans,
                  stored=(payload, outcome.body))  # fmt: skip


def idempotency_key(body: bytes, privacy_level: int) -> str:
    """The same export sent again (an exporter's retry) has the same key."""
    digest = hashlib.sha256(body).hexdigest()[:48]
    return f"otlp-{privacy_level}-{digest}"


def _response(spans: Spans, rejected: list) -> ExportTraceServiceResponse:
    """Partial success: how many spans were refused and why (and how many were left out).

    Spans left out because they are not HTTP server spans are not refusals: every
    instrumented app sends internal and client spans, and an exporter logs a warning for
    any partial success with a message (the Node SDK does, each export), so they are only
    counted (the answer's headers, left_out()) unless some span was refused.
    """
    response = ExportTraceServiceResponse()
    if rejected:
        named = [f"{spans.name(r['index'])}: {_sourced(r['error'])}"
                 for r in rejected[:NAMED_REFUSALS]]  # fmt: skip
        more = len(rejected) - len(named)
        message = (
            f"{len(rejected)} of {len(spans.rows)} HTTP server spans refused, nothing of them "
            f"stored: " + "; ".join(named) + (f"; and {more} more" if more else "") + "."
        )
        if spans.ignored:
            message += f" {left_out(spans)} spans left out: not HTTP server spans."
        response.partial_success.rejected_spans = len(rejected)
        response.partial_success.error_message = message
    return response


def left_out(spans: Spans) -> str:
    """`5 (3 internal, 2 client)`: the spans that are not HTTP server spans, by kind."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(spans.ignored.items()))
    return f"{sum(spans.ignored.values())} ({kinds})" if kinds else "0"


def _sourced(error: str) -> str:
    """A row's refusal with each field's span attribute named: `status: required, an
    integer (http.response.status_code / http.status_code)`."""
    parts = []
    for part in error.split("; "):
        name = part.split(":", 1)[0]
        parts.append(f"{part} ({SOURCES[name]})" if name in SOURCES else part)
    return "; ".join(parts)
