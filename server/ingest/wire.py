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
    type counts as absent) and in `numbers` as a whole number (0 when not one).

    Each attribute's bytes are looked up in one map call: (key, value) for one we read,
    () for one we do not. A loop over a span's dozen attributes in Python was the largest
    part of turning a span into a row (bench/README.md, bench/otlp_batch.py)."""
    picks = _PICKS.get((texts, numbers))
    if picks is None:
        picks = _PICKS[(texts, numbers)] = {}
    picked = list(map(picks.get, pairs))
    if None in picked:  # bytes not seen yet (or too long to keep)
        for index, pick in enumerate(picked):
            if pick is None:
                picked[index] = _pick(pairs[index], texts, numbers, picks)
    return dict(filter(None, picked))


# For each (texts, numbers) asked for: an attribute's bytes -> (key, value) or ().
_PICKS: dict[tuple[frozenset, frozenset], dict[bytes, tuple]] = {}


def _pick(encoded: bytes, texts: frozenset, numbers: frozenset, picks: dict) -> tuple:
    decoded = _SEEN.get(encoded)
    if decoded is None:
        decoded = _decode(encoded)
    key = decoded[0]
    if key in texts:
        pick = (key, decoded[1])
    elif key in numbers:
        pick = (key, decoded[2])
    else:
        pick = ()
    if len(encoded) <= SEEN_LONGEST:
        if len(picks) >= SEEN_LIMIT:
            picks.clear()
        picks[encoded] = pick
    return pick


CORRUPT = "Not a valid OTLP protobuf export: {} is corrupt."


def _decode(encoded: bytes) -> tuple[str, str, int]:
    decoded = _string_pair(encoded)
    if decoded is not None:
        _remember(encoded, decoded)
        return decoded
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
    _remember(encoded, decoded)
    return decoded


def _remember(encoded: bytes, decoded: tuple) -> None:
    if len(encoded) <= SEEN_LONGEST:
        if len(_SEEN) >= SEEN_LIMIT:
            _SEEN.clear()
        _SEEN[encoded] = decoded


def _string_pair(encoded: bytes) -> tuple[str, str, int] | None:
    """A KeyValue holding a string, read from its bytes: (key, text, whole number or 0),
    as _decode gives it; None for any other shape, which KeyValue then decodes.

    Attributes whose values differ from span to span (a client address, a path, a user)
    miss the cache, and the official class took about 2 µs to decode each; this reads the
    one layout every exporter writes for them (key, then a value holding only a string,
    lengths exact, valid UTF-8) in a fraction of that (bench/README.md, OTLP)."""
    try:
        if encoded[0] != 0x0A:  # field 1 (key), length-delimited
            return None
        size, at = _length(encoded, 1)
        key_end = at + size
        if encoded[key_end] != 0x12:  # field 2 (value), length-delimited
            return None
        size, value_at = _length(encoded, key_end + 1)
        if value_at + size != len(encoded) or encoded[value_at] != 0x0A:  # string_value
            return None
        size, text_at = _length(encoded, value_at + 1)
        if text_at + size != len(encoded):
            return None
        key = encoded[at:key_end].decode()
        text = encoded[text_at:].decode()
    except (IndexError, UnicodeDecodeError):
        return None
    return key, text, int(text) if text.isdigit() and len(text) < 10 else 0


def _length(data: bytes, at: int) -> tuple[int, int]:
    """A length of one or two varint bytes at `at`, and where its field starts; a longer
    one reads as past the end (the caller falls back to the official decoder)."""
    first = data[at]
    if first < 0x80:
        return first, at + 1
    second = data[at + 1]
    if second < 0x80:
        return (first & 0x7F) | (second << 7), at + 2
    return len(data) + 1, at


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
