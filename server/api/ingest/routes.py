"""Ingest: a middleware posts a batch of logged requests; its rows are enriched and stored
before the answer (or, if that fails, staged for a worker)."""

from __future__ import annotations

import hashlib
import json
import logging
import time

from flask import current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from server.api.base import Blueprint
from server.api.ingest.schemas import IngestResultSchema
from server.api.schemas import ErrorSchema
from server.auth import key_from_request, lookup_ingest_key, touch_key
from server.batches import describe_error
from server.db import get_engine, insert_ignoring_conflicts, utcnow
from server.ingest import PayloadError, encode_rows, inflate, parse_payload, storable
from server.lake.batch import accept
from server.lake.keys import hold_key
from server.lake.write import store_rows
from server.models import ingest_batches, ingest_receipts
from server.queue import ask_for_export, enqueue_batch, get_queue

log = logging.getLogger(__name__)
blp = Blueprint("ingest", __name__, description="Ingest logged requests")

IDEMPOTENCY_HEADER = "Idempotency-Key"

PAYLOAD_DOC = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestPayload"}}},
    "description": "The payload the published clients send; may be Content-Encoding: gzip.",
}


def _read_body(max_body: int) -> bytes:
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        abort(415, message=f"Content-Type must be application/json, not {mimetype or 'missing'}.")
    body = _body_within(max_body)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "gzip":
        return inflate(body, max_body)
    if encoding not in ("", "identity"):
        abort(415, message=f"Content-Encoding {encoding!r} is not supported; use gzip or none.")
    return body


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
    """Fixed one-minute window per key, counted in Redis; off when limit is 0."""
    queue = get_queue()
    if not limit or not hasattr(queue, "redis"):
        return
    window = int(time.time() // 60)
    counter = f"api-analytics:rate:{key_id}:{window}"
    try:
        pipe = queue.redis.pipeline()
        pipe.incr(counter)
        pipe.expire(counter, 120)
        count = pipe.execute()[0]
    except Exception as exc:
        # Refusing data because the limiter is down would lose it; let it through.
        log.warning("rate limiter unavailable (%s); not limiting", exc)
        return
    if count > limit:
        retry_after = 60 - int(time.time() % 60)
        abort(
            429,
            message=f"Rate limit of {limit} batches a minute exceeded.",
            headers={"Retry-After": str(retry_after)},
        )


def ingest():
    settings = current_app.config["SETTINGS"]
    try:
        payload = parse_payload(_read_body(settings.MAX_BODY), max_batch=settings.MAX_BATCH)
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
        idempotency_key = _idempotency_key()
        # A retry of a batch already stored is answered before any enrichment (the
        # receipt claimed in the write's transaction still settles two sent at once).
        earlier = _receipt(conn, key_id, idempotency_key) if idempotency_key else None

    now = utcnow()
    level = payload.get("privacy_level", 0)
    batch, rejected = accept(payload["requests"], level, now)
    if not batch:
        response = jsonify(
            code=400,
            status="Bad Request",
            message="Every row was refused; nothing was stored.",
            accepted=0,
            rejected=rejected,
        )
        response.status_code = 400
        return response
    framework = payload.get("framework")
    framework = storable(framework[:64]) if framework else None
    answer = {"accepted": len(batch), "rejected": rejected}
    digest = _batch_digest(level, framework, batch.staged(), rejected) if idempotency_key else None
    if earlier is not None:
        return _replayed(_earlier_answer(earlier, idempotency_key, digest))
    receipt = (key_id, idempotency_key, answer, digest, now)

    # The rows are enriched and written here, in the transaction that answers 201: no
    # second copy of the batch to stage, claim and parse again (bench/README.md). If
    # that fails, the batch is staged instead and a worker stores it (retried, and kept
    # for an operator if it keeps failing: server.batches), so an accepted row is kept
    # either way.
    staged_id = None
    try:
        enriched = batch.enrich(engine, key_id, framework)
        previous, _ = _commit(engine, receipt, lambda conn: store_rows(conn, enriched))
    except HTTPException:
        raise
    except Exception as exc:
        log.warning(
            "a batch of %s rows could not be written at once (%s); staged for the workers",
            len(batch), describe_error(exc), exc_info=not isinstance(exc, DBAPIError),
        )  # fmt: skip
        rows = batch.staged()
        previous, staged_id = _commit(
            engine, receipt, lambda conn: _stage(conn, key_id, framework, level, rows, now)
        )
    if previous is not None:
        return _replayed(previous)
    if staged_id is not None:
        enqueue_batch(staged_id)
    else:
        ask_for_export()
    log.debug("batch stored: %s rows, %s refused", len(batch), len(rejected))
    return answer


def _replayed(previous: dict):
    """A retry of a batch we already stored: the same answer, nothing stored again."""
    log.info("batch with a known Idempotency-Key replayed; nothing stored")
    return previous, 201, {"Idempotent-Replayed": "true"}


def _commit(engine, receipt: tuple, store):
    """One transaction: the Idempotency-Key's receipt (if any), `store(conn)`, the key's
    activity. Returns (the earlier answer if the batch was seen before, else None;
    what `store` returned)."""
    key_id, idempotency_key, answer, digest, now = receipt
    with engine.begin() as conn:
        if not hold_key(conn, key_id):
            abort(401, message="Unknown or revoked API key.")  # deleted meanwhile
        if idempotency_key:
            previous = _claim_receipt(conn, key_id, idempotency_key, answer, digest, now)
            if previous is not None:
                return previous, None
        stored = store(conn)
        touch_key(conn, key_id)
    return None, stored


def _stage(conn, key_id: int, framework, level: int, rows: list, now) -> int:
    """The batch as staged rows, for a worker to store (worker.enrich.process_batch)."""
    return conn.execute(
        insert(ingest_batches)
        .values(
            key_id=key_id,
            created_at=now,
            framework=framework,
            privacy_level=level,
            row_count=len(rows),
            payload=encode_rows(rows),
            attempts=0,
        )
        .returning(ingest_batches.c.id)
    ).scalar_one()


def _idempotency_key() -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    value = value.strip()
    if not 0 < len(value) <= 128:
        abort(400, message=f"{IDEMPOTENCY_HEADER} must be 1 to 128 characters.")
    return value


def _batch_digest(level: int, framework, rows: list, rejected: list) -> bytes:
    """What the batch holds, once validated: the same rows sent again match, whatever
    the JSON's spacing or key order, and different rows do not."""
    return hashlib.sha256(encode_rows([level, framework, rows, rejected])).digest()


def _claim_receipt(
    conn, key_id: int, idempotency_key: str, answer: dict, digest: bytes, now
) -> dict | None:
    """Record this batch's answer under its key; the earlier answer if it was seen before.

    A concurrent duplicate waits on the primary key until the first commits. The same
    key with other rows is refused (422): answering it as a replay would drop them.
    """
    claimed = conn.execute(
        insert_ignoring_conflicts(conn, ingest_receipts, ["key_id", "idempotency_key"])
        .values(key_id=key_id, idempotency_key=idempotency_key, created_at=now,
                answer=json.dumps(answer), body_digest=digest)
        .returning(ingest_receipts.c.key_id)
    ).first()  # fmt: skip
    if claimed is not None:
        return None
    return _earlier_answer(_receipt(conn, key_id, idempotency_key), idempotency_key, digest)


def _receipt(conn, key_id: int, idempotency_key: str):
    """The receipt of the batch first sent under this key (its answer and digest), if any."""
    return conn.execute(
        select(ingest_receipts.c.answer, ingest_receipts.c.body_digest).where(
            ingest_receipts.c.key_id == key_id,
            ingest_receipts.c.idempotency_key == idempotency_key,
        )
    ).first()


def _earlier_answer(stored, idempotency_key: str, digest: bytes) -> dict:
    """The answer to replay from a receipt; the same key with other rows is refused (422)."""
    # Receipts written before digests were kept have none: they are taken as replays.
    if stored.body_digest is not None and bytes(stored.body_digest) != digest:
        abort(
            422,
            message=f"{IDEMPOTENCY_HEADER} {idempotency_key!r} was already used for a "
            "different batch: nothing of this one was stored. Send new rows under a new key; "
            "reuse a key only to retry the very same batch.",
        )
    return json.loads(stored.answer)


ERRORS = {
    400: "Malformed JSON, a missing or ill-typed field, or every row refused.",
    401: "Missing, unknown or revoked API key.",
    413: "Too many rows, or the body is too large (before or after gunzip).",
    415: "Not JSON, or an unsupported Content-Encoding.",
    422: "The Idempotency-Key was already used for a different batch.",
    429: "Rate limit exceeded; see Retry-After.",
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
    return blp.doc(requestBody=PAYLOAD_DOC, security=[], parameters=[header])(view)


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
