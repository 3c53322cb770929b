"""OpenTelemetry over HTTP: `POST /v1/traces`, the path OTLP/HTTP exporters post to when
OTEL_EXPORTER_OTLP_ENDPOINT names our server (README.md, OpenTelemetry). The body, the key,
the rate limit and the answer's HTTP shape are checked here; the export is decoded and
stored by server.ingest.otlp through the same pipeline as the JSON clients' batches.

Every answer is the one the OTLP/HTTP specification asks for, in the request's encoding,
so exporters retry what is worth retrying (429 and 503, after Retry-After) and drop what
never will be (400, 401, 413, 415).
"""

from __future__ import annotations

import logging

from flask import Response, current_app, request
from flask.views import MethodView
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import RequestEntityTooLarge

from server.api.base import Blueprint
from server.auth import key_from_request
from server.db import get_engine
from server.ingest import backlog, otlp
from server.ingest.fields import PayloadError
from server.ingest_health import record as ingest_health
from server.keys.api_keys import lookup_ingest_key
from server.ratelimit import hit_per_minute

log = logging.getLogger(__name__)
blp = Blueprint("otlp", __name__, description="OpenTelemetry traces (OTLP/HTTP)")

PRIVACY_HEADER = "X-Privacy-Level"
# The database did not answer: an exporter retries a 503 after this many seconds.
RETRY_SECONDS = 5


def export() -> Response:
    mimetype = (request.mimetype or "").lower()
    content_type = otlp.CONTENT_TYPES.get(mimetype)
    if content_type is None:
        return _answer(
            otlp.failure(415, f"Content-Type must be {otlp.PROTOBUF} or {otlp.JSON} "
                         f"(OTLP/HTTP), not {mimetype or 'missing'}."),
            otlp.JSON,
        )  # fmt: skip
    settings = current_app.config["SETTINGS"]
    try:
        return _answer(_export(settings, content_type), content_type)
    except PayloadError as exc:
        return _answer(otlp.failure(exc.status, exc.message), content_type)
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        log.warning("OTLP export not stored, the database did not answer: %s", type(exc).__name__)
        failure = otlp.failure(
            503, f"The database is unavailable; send the export again in {RETRY_SECONDS} s.",
            headers={"Retry-After": str(RETRY_SECONDS)},
        )  # fmt: skip
        return _answer(failure, content_type)


def _export(settings, content_type: str) -> otlp.Answer:
    body = _body_within(settings.MAX_BODY)
    key = key_from_request()
    if not key:
        return otlp.failure(401, "Missing API key: set OTEL_EXPORTER_OTLP_HEADERS to "
                            "x-auth-token=<key> (or Authorization=Bearer%20<key>).")  # fmt: skip
    level = _privacy_level()
    engine = get_engine()
    with engine.connect() as conn:
        key_id = lookup_ingest_key(conn, key)
    if key_id is None:
        return otlp.failure(401, "Unknown or revoked API key.")
    limit = settings.RATE_LIMIT_PER_MINUTE
    retry_after = hit_per_minute(limit, "ingest", str(key_id))
    if retry_after is not None:
        return otlp.failure(429, f"Rate limit of {limit} batches a minute exceeded.",
                            headers={"Retry-After": str(retry_after)})  # fmt: skip
    behind = backlog.refusal(engine, settings)
    if behind:
        return otlp.failure(429, behind, headers={"Retry-After": str(backlog.RETRY_SECONDS)})
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    message, decoded = otlp.read(body, content_type, encoding, settings.MAX_BODY)
    answer = otlp.export(engine, message, decoded, key_id, privacy_level=level,
                         max_batch=settings.MAX_BATCH)  # fmt: skip
    if answer.stored is not None and not answer.replayed:
        # The exporter's client (its User-Agent: OTel-OTLP-Exporter-Python/1.45.1, ...) on
        # the key's ingest health page, with what was accepted and refused.
        payload, body = answer.stored
        ingest_health.note(key_id, payload, body, request.headers.get("User-Agent"))
    return answer


def _body_within(max_body: int) -> bytes:
    """The raw body, or 413 past `max_body` bytes, with or without a Content-Length (see
    server.api.ingest.routes: the app's limit is one byte above MAX_BODY)."""
    too_large = PayloadError(413, f"Body is over the {max_body} byte limit.")
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(body) > max_body:
        raise too_large
    return body


def _privacy_level() -> int:
    """The privacy level an owner sets with OTEL_EXPORTER_OTLP_HEADERS (0 by default):
    1 keeps the address for the country only, 2 never reads it (as our clients' levels)."""
    value = request.headers.get(PRIVACY_HEADER, "0").strip()
    if value not in ("0", "1", "2"):
        raise PayloadError(400, f"{PRIVACY_HEADER} must be 0, 1 or 2.")
    return int(value)


def _answer(answer: otlp.Answer, content_type: str) -> Response:
    response = Response(otlp.encode(answer, content_type), answer.status, mimetype=content_type)
    for name, value in (answer.headers or {}).items():
        response.headers[name] = value
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if answer.spans is not None:
        # What the export held, for a person reading the answer (exporters do not).
        response.headers["X-Spans-Received"] = str(answer.spans.total)
        response.headers["X-Spans-Left-Out"] = otlp.left_out(answer.spans)
    return response


_BINARY = {"type": "string", "format": "binary"}
_OTLP_JSON = {"type": "object", "description": "OTLP JSON: hex ids, lowerCamelCase names"}
_BOTH = {otlp.PROTOBUF: {"schema": _BINARY}, otlp.JSON: {"schema": _OTLP_JSON}}
ANSWERS = {
    200: "Stored: an ExportTraceServiceResponse; its partial_success names the spans "
    "refused and why, and the spans left out (not HTTP server spans).",
    400: "Not a valid ExportTraceServiceRequest, or a bad X-Privacy-Level (a google.rpc.Status).",
    401: "Missing, unknown or revoked API key.",
    413: "The body is too large (before or after gunzip), or too many HTTP server spans.",
    415: "Not application/x-protobuf or application/json, or an encoding other than gzip.",
    429: "Rate limit exceeded, or the server is behind; see Retry-After.",
    503: "The database did not answer; see Retry-After.",
}
DOC = {
    "security": [],
    "parameters": [
        {"in": "header", "name": "X-AUTH-TOKEN", "required": False, "schema": {"type": "string"},
         "description": "The API key (or Authorization: Bearer <key>)."},
        {"in": "header", "name": PRIVACY_HEADER, "required": False,
         "schema": {"type": "string", "enum": ["0", "1", "2"]},
         "description": "0 (default) stores client addresses; 1 looks up the country only; "
         "2 never reads them."},
    ],  # fmt: skip
    "requestBody": {"required": True, "content": _BOTH,
                    "description": "An ExportTraceServiceRequest; may be Content-Encoding: gzip."},
    "responses": {str(code): {"description": text, "content": _BOTH}
                  for code, text in ANSWERS.items()},
}  # fmt: skip


@blp.route("/v1/traces")
class Traces(MethodView):
    @blp.doc(**DOC)
    def post(self):
        """Take OpenTelemetry traces (OTLP/HTTP)

        Each HTTP server span becomes one logged request (README.md, OpenTelemetry), stored
        before the answer; an exporter's retry of the same export is not stored twice.
        """
        return export()
