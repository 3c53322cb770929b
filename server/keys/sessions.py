"""A dashboard session's binding to its key: the session holds the key's id and a tag of
its hash, never the key, so a deleted or rotated key's session opens nothing, not even a
key given the same id later."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select

from server.keys.api_keys import hash_key
from server.models import api_keys


def key_tag(key_hash: bytes) -> str:
    """What the session holds besides the id: unique to the key, useless without it."""
    return hashlib.sha256(b"dashboard-session:" + bytes(key_hash)).hexdigest()[:32]


def tag_of_key(key: str) -> str:
    return key_tag(hash_key(key))


def still_bound(conn, key_id, tag) -> bool:
    """Whether (key_id, tag) from a session still names that very key."""
    if not isinstance(key_id, int) or not isinstance(tag, str):
        return False
    key_hash = conn.execute(select(api_keys.c.key_hash).where(api_keys.c.id == key_id)).scalar()
    return key_hash is not None and hmac.compare_digest(key_tag(key_hash), tag)
