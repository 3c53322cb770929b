"""The store step: a batch's rows, its receipt and its key's activity in one transaction.

A batch sent with an Idempotency-Key leaves a receipt (its answer and a digest of what
it held) in the same transaction as its rows, so a client retrying a batch whose 201 it
never saw gets the same answer and nothing is stored twice; the same key with other rows
is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select

from server.db import insert_ignoring_conflicts
from server.ingest.fields import PayloadError
from server.keys.api_keys import touch_key
from server.lake.layout import DETAILS, PAYLOADS, REQUESTS
from server.lake.write import hold_key, store_rows
from server.models import ingest_receipts

IDEMPOTENCY_HEADER = "Idempotency-Key"


def write(conn, stored) -> None:
    """A batch's rows (server.ingest.enrich.Stored) into each dataset's hot table, in the
    caller's transaction."""
    store_rows(conn, stored.requests, REQUESTS)
    store_rows(conn, stored.details, DETAILS)
    store_rows(conn, stored.payloads, PAYLOADS)


@dataclass(frozen=True)
class Receipt:
    key_id: int
    idempotency_key: str
    answer: dict
    digest: bytes
    at: datetime


def commit(engine, key_id: int, receipt: Receipt | None, store: Callable):
    """One transaction: the receipt (if any), `store(conn)`, the key's activity. Returns
    (the earlier answer if the batch was seen before, else None; what `store` returned).
    Raises PayloadError (401) when the key was deleted meanwhile."""
    with engine.begin() as conn:
        if not hold_key(conn, key_id):
            raise PayloadError(401, "Unknown or revoked API key.")
        if receipt is not None:
            previous = claim(conn, receipt)
            if previous is not None:
                return previous, None
        stored = store(conn)
        touch_key(conn, key_id)
    return None, stored


def batch_digest(level: int, framework, rows: list, rejected: list) -> bytes:
    """What the batch holds, once checked: the same rows sent again match, whatever the
    JSON's spacing or key order, and different rows do not."""
    return hashlib.sha256(orjson.dumps([level, framework, rows, rejected])).digest()


def claim(conn, receipt: Receipt) -> dict | None:
    """Record this batch's answer under its key; the earlier answer if it was seen before.

    A concurrent duplicate waits on the primary key until the first commits. The same
    key with other rows is refused (422): answering it as a replay would drop them.
    """
    claimed = conn.execute(
        insert_ignoring_conflicts(conn, ingest_receipts, ["key_id", "idempotency_key"])
        .values(key_id=receipt.key_id, idempotency_key=receipt.idempotency_key,
                created_at=receipt.at, answer=json.dumps(receipt.answer),
                body_digest=receipt.digest)
        .returning(ingest_receipts.c.key_id)
    ).first()  # fmt: skip
    if claimed is not None:
        return None
    earlier = receipt_of(conn, receipt.key_id, receipt.idempotency_key)
    return earlier_answer(earlier, receipt.idempotency_key, receipt.digest)


def receipt_of(conn, key_id: int, idempotency_key: str):
    """The receipt of the batch first sent under this key (its answer and digest), if any."""
    return conn.execute(
        select(ingest_receipts.c.answer, ingest_receipts.c.body_digest).where(
            ingest_receipts.c.key_id == key_id,
            ingest_receipts.c.idempotency_key == idempotency_key,
        )
    ).first()


def earlier_answer(stored, idempotency_key: str, digest: bytes) -> dict:
    """The answer to replay from a receipt; the same key with other rows is refused (422)."""
    # Receipts written before digests were kept have none: they are taken as replays.
    if stored.body_digest is not None and bytes(stored.body_digest) != digest:
        raise PayloadError(
            422,
            f"{IDEMPOTENCY_HEADER} {idempotency_key!r} was already used for a "
            "different batch: nothing of this one was stored. Send new rows under a new key; "
            "reuse a key only to retry the very same batch.",
        )
    return json.loads(stored.answer)
