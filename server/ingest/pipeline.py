"""The ingest pipeline: one batch of logged requests, from its body to stored rows.

The steps, in order: read (gunzip within the size limit) and parse (the envelope), check
(server.ingest.columns: column by column, else row by row), enrich
(server.ingest.enrich), store (server.ingest.store: one transaction with the batch's
receipt; if it fails, the batch is staged for a worker, server.ingest.staging, which
takes the same enrich and store steps). The web calls `read` and `run`; what is HTTP
(headers, the key, rate limits) stays in server.api.ingest.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field

import orjson
from sqlalchemy.exc import DBAPIError

from server import queue
from server.db import utcnow
from server.ingest import staging, store
from server.ingest.backlog import describe_error
from server.ingest.columns import check
from server.ingest.enrich import enrich
from server.ingest.fields import PayloadError, storable
from server.ingest.masking import key_masks_of
from server.lake.export import run_export

log = logging.getLogger(__name__)


def inflate(body: bytes, limit: int) -> bytes:
    """Gunzip a body, refusing it (413) as soon as it would exceed `limit` bytes.

    Decompressing in bounded steps means a gzip bomb costs at most `limit` bytes.
    """
    decompressor = zlib.decompressobj(wbits=31)
    try:
        out = decompressor.decompress(body, limit + 1)
        if len(out) > limit or decompressor.unconsumed_tail:
            raise PayloadError(413, f"Body is over the {limit} byte limit once decompressed.")
        out += decompressor.flush()
    except zlib.error as exc:
        raise PayloadError(400, f"Body is not valid gzip: {exc}") from None
    if len(out) > limit:
        raise PayloadError(413, f"Body is over the {limit} byte limit once decompressed.")
    if not decompressor.eof:
        raise PayloadError(400, "Body is not valid gzip: the stream is truncated.")
    return out


def parse_payload(body: bytes, *, max_batch: int) -> dict:
    """Decode and check the envelope of an ingest payload (not its rows)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson is stricter than JSON as clients write it (lone surrogates, NaN, integers
        # past 64 bits): such a body takes the standard parser, and its rules and messages.
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError(400, f"Malformed JSON: {exc}") from None
        except RecursionError:
            raise PayloadError(400, "Malformed JSON: nested too deeply.") from None
    if not isinstance(payload, dict):
        raise PayloadError(400, "The body must be a JSON object.")
    rows = payload.get("requests")
    if rows is None:
        raise PayloadError(400, "Missing 'requests': a list of logged requests is required.")
    if not isinstance(rows, list):
        raise PayloadError(400, "'requests' must be a list.")
    if not rows:
        raise PayloadError(400, "'requests' is empty: nothing to store.")
    if len(rows) > max_batch:
        raise PayloadError(
            413, f"Too many rows: {len(rows)} in one batch, the limit is {max_batch}."
        )
    level = payload.get("privacy_level", 0)
    if isinstance(level, bool) or level not in (0, 1, 2):
        raise PayloadError(400, "'privacy_level' must be 0, 1 or 2.")
    framework = payload.get("framework")
    if framework is not None and not isinstance(framework, str):
        raise PayloadError(400, "'framework' must be a string.")
    return payload


def read(body: bytes, encoding: str, *, max_body: int, max_batch: int) -> dict:
    """The read and parse steps: the payload of a body sent with Content-Encoding
    `encoding` ("gzip", or "" / "identity"); raises PayloadError."""
    if encoding == "gzip":
        body = inflate(body, max_body)
    elif encoding not in ("", "identity"):
        raise PayloadError(
            415, f"Content-Encoding {encoding!r} is not supported; use gzip or none."
        )
    return parse_payload(body, max_batch=max_batch)


@dataclass
class Outcome:
    """What to answer: `status` and `body`; `replayed` when a retry of a stored batch."""

    status: int
    body: dict
    replayed: bool = False
    staged_id: int | None = field(default=None, repr=False)


# The web asks for an export at most this often per process. Each ask that finds no job
# waiting queues one, and a job costs several Redis round trips and a few ms of a
# worker's CPU: asked after every batch, a 300-batch round of bench/ingest.py ran 249
# export jobs, nearly all with nothing due. The job decides whether an export is due
# (server.lake.export._due), and the schedule runs it every LAKE_EXPORT_SECONDS anyway.
EXPORT_ASK_SECONDS = 1.0
_export_asked = {"at": float("-inf")}
_export_ask_lock = threading.Lock()


def ask_for_export() -> None:
    """Ask for hot rows to move into the columnar store (one such job waits at a time),
    at most once every EXPORT_ASK_SECONDS in this process."""
    now = time.monotonic()
    with _export_ask_lock:
        if now - _export_asked["at"] < EXPORT_ASK_SECONDS:
            return
        _export_asked["at"] = now
    queue.ask(run_export)


def run(engine, payload: dict, key_id: int, idempotency_key: str | None) -> Outcome:
    """The check, enrich and store steps for a parsed payload of the key `key_id`.

    A retry under a known Idempotency-Key is answered from its receipt before any work.
    The rows are enriched and written before the answer: no second copy of the batch to
    stage, claim and parse again (bench/README.md). If that fails, the batch is staged
    instead and a worker stores it (retried, and kept for an operator if it keeps
    failing: server.ingest.backlog), so an accepted row is kept either way.
    """
    earlier = None
    if idempotency_key:
        with engine.connect() as conn:
            earlier = store.receipt_of(conn, key_id, idempotency_key)
    now = utcnow()
    level = payload.get("privacy_level", 0)
    batch, rejected = check(payload["requests"], level, now, masks=lambda: _masks(engine, key_id))
    if not batch:
        body = {"code": 400, "status": "Bad Request",
                "message": "Every row was refused; nothing was stored.",
                "accepted": 0, "rejected": rejected}  # fmt: skip
        return Outcome(400, body)
    framework = payload.get("framework")
    framework = storable(framework[:64]) if framework else None
    answer = {"accepted": len(batch), "rejected": rejected}
    receipt = None
    if idempotency_key:
        digest = store.batch_digest(level, framework, batch.staged(), rejected)
        if earlier is not None:
            return _replayed(store.earlier_answer(earlier, idempotency_key, digest))
        receipt = store.Receipt(key_id, idempotency_key, answer, digest, now)
    staged_id = None
    try:
        rows = enrich(engine, key_id, framework, batch)
        previous, _ = store.commit(engine, key_id, receipt, lambda conn: store.write(conn, rows))
    except PayloadError:
        raise
    except Exception as exc:
        log.warning(
            "a batch of %s rows could not be written at once (%s); staged for the workers",
            len(batch), describe_error(exc), exc_info=not isinstance(exc, DBAPIError),
        )  # fmt: skip
        staged = batch.staged()
        previous, staged_id = store.commit(
            engine, key_id, receipt,
            lambda conn: staging.stage(conn, key_id, framework, level, staged, now),
        )  # fmt: skip
    if previous is not None:
        return _replayed(previous)
    if staged_id is not None:
        staging.ask_to_store(staged_id)
    else:
        ask_for_export()
    log.debug("batch stored: %s rows, %s refused", len(batch), len(rejected))
    return Outcome(201, answer, staged_id=staged_id)


def _masks(engine, key_id: int):
    """The key's own masking patterns, on top of the defaults (server.ingest.masking)."""
    with engine.connect() as conn:
        return key_masks_of(conn, key_id)


def _replayed(previous: dict) -> Outcome:
    """A retry of a batch we already stored: the same answer, nothing stored again."""
    log.info("batch with a known Idempotency-Key replayed; nothing stored")
    return Outcome(201, previous, replayed=True)
