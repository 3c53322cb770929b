"""A key's own masking patterns, on top of the defaults (docs/capture.md): listed, added
and deleted by the API and the settings page; applied by ingest (server.ingest.masking)
to every capture the key receives from then on."""

from __future__ import annotations

from sqlalchemy import delete, insert, select

from server.db import utcnow
from server.keys.caps import MASKS, CapReached, ensure_room
from server.models import key_masks
from server.rules import MASK_KINDS, compile_mask

MASK_LIMIT = MASKS  # patterns per key (server.keys.caps)
KINDS = MASK_KINDS
MaskLimitReached = CapReached


def list_masks(conn, key_id: int) -> list[dict]:
    m = key_masks.c
    rows = conn.execute(
        select(m.id, m.kind, m.pattern, m.created_at).where(m.key_id == key_id).order_by(m.id)
    )
    return [dict(r._mapping) for r in rows]


def add_mask(conn, key_id: int, kind: str, pattern: str) -> dict:
    """Store a pattern (checked: ValueError names the problem); one already there is
    returned as it is. MaskLimitReached past MASK_LIMIT."""
    compile_mask(kind, pattern)
    pattern = pattern.strip()
    m = key_masks.c
    existing = conn.execute(
        select(m.id).where(m.key_id == key_id, m.kind == kind, m.pattern == pattern)
    ).scalar()
    if existing is None:
        ensure_room(conn, key_id, key_masks, MASK_LIMIT, "masking patterns")
        conn.execute(
            insert(key_masks).values(key_id=key_id, kind=kind, pattern=pattern, created_at=utcnow())
        )
    return next(r for r in list_masks(conn, key_id) if (r["kind"], r["pattern"]) == (kind, pattern))


def delete_mask(conn, key_id: int, mask_id: int) -> bool:
    m = key_masks.c
    return conn.execute(delete(key_masks).where(m.key_id == key_id, m.id == mask_id)).rowcount > 0
