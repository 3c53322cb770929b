"""Ingest over HTTP: a middleware posts a batch of logged requests; the body, the key and
the rate limit are checked here, and the batch goes through the pipeline
(server.ingest.pipeline), stored before the answer."""

from __future__ import annotations

import logging
from time import time

from flask import current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge

from server.api.base import Blueprint
from server.api.ingest.schemas import IngestResultSchema
from server.api.schemas import ErrorSchema
from server.auth import key_from_request
from server.db import get_engine
from server.ingest import backlog, pipeline
from server.ingest.fields import PayloadError
from server.ingest.store import IDEMPOTENCY_HEADER
from server.ingest_health import record as ingest_health
from server.ingest_health.reports import read_report
from server.keys.api_keys import lookup_ingest_key
from server.ratelimit import hit_per_minute

log = logging.getLogger(__name__)
blp = Blueprint("ingest", __name__, description="Ingest logged requests")

PAYLOAD_DOC = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestPayload"}}},
    "description": "The payload the published clients send; may be Content-Encoding: gzip.",
}


def _read_body(max_body: int) -> bytes:
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        abort(415, message=f"Content-Type must be application/json, not {mimetype or 'missing'}.")
    return _body_within(max_body)


def _body_within(max_body: int) -> bytes:
    """The raw body, or 413 past `max_body` bytes, whether or not it came with a length.

    A chunked body has no Content-Length to refuse up front, and werkzeug's read simply
    stops at the app's limit: the limit is set one byte above MAX_BODY (server/__init__)
    so that reading one byte too many is how an oversize chunked body shows itself.
    """
    too_large = f"Body is over the {max_body} byte limit."
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        abort(413, message=too_large)
    if len(body) > max_body:
        abort(413, message=too_large)
    return body


def _check_rate(key_id: int, limit: int) -> None:
    """RATE_LIMIT_PER_MINUTE batches a minute per key (off when 0)."""
    retry_after = hit_per_minute(limit, "ingest", str(key_id))
    if retry_after is not None:
        abort(
            429,
            message=f"Rate limit of {limit} batches a minute exceeded.",
            headers={"Retry-After": str(retry_after)},
        )


def _check_backlog(engine, settings) -> None:
    """Past what the server can take, 429 and Retry-After (server.ingest.backlog)."""
    reason = backlog.refusal(engine, settings)
    if reason:
        abort(429, message=reason, headers={"Retry-After": str(backlog.RETRY_SECONDS)})


def ingest():
    received = time()  # for the client's clock skew (server.ingest_health.reports)
    settings = current_app.config["SETTINGS"]
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    try:
        payload = pipeline.read(
            _read_body(settings.MAX_BODY), encoding,
            max_body=settings.MAX_BODY, max_batch=settings.MAX_BATCH,
        )  # fmt: skip
    except PayloadError as exc:
        abort(exc.status, message=exc.message)
    key = payload.get("api_key") or key_from_request()
    if not key:
        abort(401, message="Missing 'api_key'.")
    engine = get_engine()
    with engine.connect() as conn:
        key_id = lookup_ingest_key(conn, key)
    if key_id is None:
        abort(401, message="Unknown or revoked API key.")
    _check_rate(key_id, settings.RATE_LIMIT_PER_MINUTE)
    _check_backlog(engine, settings)
    try:
        outcome = pipeline.run(engine, payload, key_id, _idempotency_key())
    except PayloadError as exc:
        abort(exc.status, message=exc.message)
    if not outcome.replayed:  # what arrived and what was refused, for its owner to see
        report = read_report(request.headers, received)
        ingest_health.note(key_id, payload, outcome.body, request.headers.get("User-Agent"), report)
    if outcome.status != 201:
        response = jsonify(outcome.body)
        response.status_code = outcome.status
        return response
    if outcome.replayed:
        return outcome.body, 201, {"Idempotent-Replayed": "true"}
    return outcome.body


def _idempotency_key() -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    value = value.strip()
    if not 0 < len(value) <= 128:
        abort(400, message=f"{IDEMPOTENCY_HEADER} must be 1 to 128 characters.")
    return value


ERRORS = {
    400: "Malformed JSON, a missing or ill-typed field, or every row refused.",
    401: "Missing, unknown or revoked API key.",
    413: "Too many rows, or the body is too large (before or after gunzip).",
    415: "Not JSON, or an unsupported Content-Encoding.",
    422: "The Idempotency-Key was already used for a different batch.",
    429: "Rate limit exceeded, or the server is behind; see Retry-After.",
}


def _document(view):
    for code, description in ERRORS.items():
        view = blp.alt_response(code, schema=ErrorSchema, description=description)(view)
    header = {
        "in": "header",
        "name": IDEMPOTENCY_HEADER,
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        "description": "The same value on a retry of the same batch: it is stored once. "
        "The same value with other rows is refused (422).",
    }
    reports = [
        {"in": "header", "name": name, "required": False, "schema": {"type": "string"},
         "description": description}
        for name, description in REPORT_HEADERS.items()
    ]  # fmt: skip
    return blp.doc(requestBody=PAYLOAD_DOC, security=[], parameters=[header, *reports])(view)


REPORT_HEADERS = {
    "X-Client-Time": "Our client's clock as it sent the batch (Unix seconds): the Ingest "
    "page shows the clock skew. Optional; ignored if unreadable.",
    "X-Client-Drops": "Our client process's drop counters, `instance=<hex>; buffer_full=N; "
    "refused=N; failed=N`: the Ingest page shows them. Optional; ignored if unreadable.",
}


@blp.route("/log-request")
class LogRequest(MethodView):
    @_document
    @blp.response(201, IngestResultSchema)
    def post(self):
        """Ingest a batch of logged requests

        The batch is stored before the answer, so an accepted row is never lost.
        Bad rows are refused one by one; the answer lists them by index. A batch
        sent again with the same Idempotency-Key header (a retry) gets the first
        answer again and is not stored twice.
        """
        return ingest()


@blp.route("/requests")
class Requests(MethodView):
    @_document
    @blp.response(201, IngestResultSchema)
    def post(self):
        """Ingest a batch of logged requests (alias of /log-request)"""
        return ingest()
