"""A key as its owner sees it (name, age, use, rotation), for the API and the dashboard."""

from __future__ import annotations

from sqlalchemy import select

from server.db import as_utc, utcnow
from server.models import api_keys


def describe_key(conn, key_id: int) -> dict | None:
    """Never the key or its hash: what the owner may read about it."""
    row = conn.execute(
        select(
            api_keys.c.name,
            api_keys.c.created_at,
            api_keys.c.last_active_at,
            api_keys.c.previous_key_expires_at,
        ).where(api_keys.c.id == key_id)
    ).first()
    if row is None:
        return None
    until = as_utc(row.previous_key_expires_at)
    return {
        "name": row.name,
        "created_at": as_utc(row.created_at),
        "last_used_at": as_utc(row.last_active_at),
        "rotation": {"previous_key_valid_until": until if until and until > utcnow() else None},
    }
