"""OTLP trace exports decoded for what we read of them: a few attributes of many spans.

The `opentelemetry-proto` classes decode every attribute of every span into a message
object of its own, and reading one costs two more: at a dozen attributes a span, that was
most of the web's CPU for an export (bench/README.md). So an export is parsed with a
mirror of the OTLP trace messages (the same field numbers; `opentelemetry.proto.trace.v1`
is the reference) that keeps each attribute as its encoded bytes, and an attribute is
decoded with the official KeyValue only the first time its bytes are seen: a method, a
status, a host, a route or a user agent repeats from span to span, and is then one
dictionary look-up. Fields we never read (links, dropped counts, trace state) are not
decoded, so not checked either.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from server.ingest.fields import PayloadError

_F = descriptor_pb2.FieldDescriptorProto
_MESSAGES = {
    # name: ((number, field, type, repeated, message type), ...), as in trace.proto.
    "ExportRequest": ((1, "resource_spans", _F.TYPE_MESSAGE, True, "ResourceSpans"),),
    "ResourceSpans": ((1, "resource", _F.TYPE_MESSAGE, False, "Resource"),
                      (2, "scope_spans", _F.TYPE_MESSAGE, True, "ScopeSpans")),
    "Resource": ((1, "attributes", _F.TYPE_BYTES, True, None),),
    "ScopeSpans": ((2, "spans", _F.TYPE_MESSAGE, True, "Span"),),
    "Span": ((1, "trace_id", _F.TYPE_BYTES, False, None),
             (2, "span_id", _F.TYPE_BYTES, False, None),
             (4, "parent_span_id", _F.TYPE_BYTES, False, None),
             (5, "name", _F.TYPE_STRING, False, None),
             (6, "kind", _F.TYPE_INT32, False, None),
             (7, "start_time_unix_nano", _F.TYPE_FIXED64, False, None),
             (8, "end_time_unix_nano", _F.TYPE_FIXED64, False, None),
             (9, "attributes", _F.TYPE_BYTES, True, None),
             (11, "events", _F.TYPE_BYTES, True, None),
             (15, "status", _F.TYPE_BYTES, False, None)),
}  # fmt: skip


def _mirror() -> type:
    """The mirror's request class, built from _MESSAGES in a descriptor pool of its own."""
    package = "apia.otlp_mirror"
    found = descriptor_pb2.FileDescriptorProto(name="apia_otlp_mirror.proto", package=package,
                                               syntax="proto3")  # fmt: skip
    for name, fields in _MESSAGES.items():
        message = found.message_type.add(name=name)
        for number, field_name, kind, repeated, type_name in fields:
            label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{package}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(found)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.ExportRequest"))


ExportRequest = _mirror()
# Decoded attributes by their bytes: (key, text or "", whole number or 0). Bounded: when
# full it starts again (a busy service's attributes are back within one export).
_SEEN: dict[bytes, tuple[str, str, int]] = {}
SEEN_LIMIT = 20_000
SEEN_LONGEST = 512  # longer values (stack traces, long URLs) are decoded each time


def parse(body: bytes):
    """An ExportTraceServiceRequest's bytes as the mirror; raises DecodeError."""
    return ExportRequest.FromString(body)


def attributes(pairs, texts: frozenset, numbers: frozenset = frozenset()) -> dict:
    """The attributes named in `texts` as text ("" when not text: a value of the wrong
    type counts as absent) and in `numbers` as a whole number (0 when not one)."""
    found = {}
    seen = _SEEN
    for encoded in pairs:
        decoded = seen.get(encoded)
        if decoded is None:
            decoded = _decode(encoded)
        key = decoded[0]
        if key in texts:
            found[key] = decoded[1]
        elif key in numbers:
            found[key] = decoded[2]
    return found


CORRUPT = "Not a valid OTLP protobuf export: {} is corrupt."


def _decode(encoded: bytes) -> tuple[str, str, int]:
    try:
        pair = KeyValue.FromString(encoded)
    except DecodeError:
        raise PayloadError(400, CORRUPT.format("an attribute")) from None
    value = pair.value
    which = value.WhichOneof("value")
    if which == "string_value":
        text = value.string_value
        decoded = (pair.key, text, int(text) if text.isdigit() and len(text) < 10 else 0)
    elif which == "int_value":
        decoded = (pair.key, "", value.int_value)
    elif which == "double_value" and value.double_value.is_integer():
        decoded = (pair.key, "", int(value.double_value))
    elif which == "array_value":
        # A captured header (http.request.header.<name>) is an array of its values.
        texts = [v.string_value for v in value.array_value.values if v.HasField("string_value")]
        decoded = (pair.key, ",".join(texts), 0)
    else:
        decoded = (pair.key, "", 0)
    if len(encoded) <= SEEN_LONGEST:
        if len(_SEEN) >= SEEN_LIMIT:
            _SEEN.clear()
        _SEEN[encoded] = decoded
    return decoded


def events(span) -> list:
    """The span's events, decoded (official Span.Event messages)."""
    try:
        return [Span.Event.FromString(event) for event in span.events]
    except DecodeError:
        raise PayloadError(400, CORRUPT.format("an event")) from None


def status_code(span) -> int:
    """The span's status code (0 unset, 1 ok, 2 error)."""
    try:
        return Status.FromString(span.status).code
    except DecodeError:
        raise PayloadError(400, CORRUPT.format("a status")) from None
