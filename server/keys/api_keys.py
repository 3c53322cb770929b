"""API keys: made (256 random bits, shown once), stored as a hash, looked up, rotated, marked
active, described to their owner and deleted with everything stored for them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update

from server.db import as_utc, get_engine, utcnow
from server.keys.sessions import end_sessions
from server.lake.erase import delete_key_rows, remove_key_files
from server.models import api_keys, dashboard_sessions

log = logging.getLogger(__name__)
# Only touch last_active_at when it is this stale, so ingest is not a write per batch.
ACTIVITY_RESOLUTION = timedelta(hours=1)


def generate_key() -> str:
    """256 random bits, URL-safe, no padding."""
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    # A fast hash is right here: the key has 256 bits of entropy, so there is
    # nothing for a slow KDF to protect against.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


NAME_MAX = 100


def clean_name(value) -> str:
    """What the owner calls the API: 1 to NAME_MAX characters once trimmed (ValueError
    names the problem). The API, the settings page and the operators' commands use it."""
    if not isinstance(value, str):
        raise ValueError("The name must be text.")
    value = value.strip()
    if not value:
        raise ValueError(f"The name is empty: give 1 to {NAME_MAX} characters.")
    if len(value) > NAME_MAX:
        raise ValueError(f"The name is {len(value)} characters long: at most {NAME_MAX}.")
    if "\x00" in value:  # PostgreSQL's text holds no NUL: refused here, not as a 500
        raise ValueError("The name holds a NUL character.")
    return value


def create_key(conn, *, is_demo: bool = False, name: str | None = None) -> tuple[int, str]:
    """Store a new key's hash and return (id, plaintext); the plaintext is never kept."""
    key = generate_key()
    now = utcnow()
    key_id = conn.execute(
        insert(api_keys)
        .values(
            key_hash=hash_key(key),
            created_at=now,
            last_active_at=now,
            is_demo=is_demo,
            name=None if name is None else clean_name(name),
        )
        .returning(api_keys.c.id)
    ).scalar_one()
    return key_id, key


def rename_key(conn, key_id: int, name) -> str:
    """Name the key's API (checked by clean_name); returns the name as stored."""
    name = clean_name(name)
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(name=name))
    return name


def lookup_key(conn, key: str | None) -> int | None:
    """The id of the key, or None when it is unknown, revoked or malformed."""
    if not key or not isinstance(key, str) or len(key) > 256:
        return None
    digest = hash_key(key)
    row = conn.execute(
        select(api_keys.c.id, api_keys.c.key_hash).where(api_keys.c.key_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(bytes(row.key_hash), digest):
        return None
    return row.id


def rotated_key_until(conn, key: str | None, now: datetime | None = None) -> datetime | None:
    """When `key` was rotated out and is still in its grace period: when that ends."""
    if not key or not isinstance(key, str) or len(key) > 256:
        return None
    digest = hash_key(key)
    row = conn.execute(
        select(api_keys.c.previous_key_hash, api_keys.c.previous_key_expires_at).where(
            api_keys.c.previous_key_hash == digest
        )
    ).first()
    if row is None or not hmac.compare_digest(bytes(row.previous_key_hash), digest):
        return None
    until = as_utc(row.previous_key_expires_at)
    return until if until is not None and until > (now or utcnow()) else None


def lookup_ingest_key(conn, key: str | None, now: datetime | None = None) -> int | None:
    """Like lookup_key, but a key rotated out less than the grace period ago counts too:
    middlewares keep sending it until they are redeployed with the new one."""
    key_id = lookup_key(conn, key)
    if key_id is not None or rotated_key_until(conn, key, now) is None:
        return key_id
    return conn.execute(
        select(api_keys.c.id).where(api_keys.c.previous_key_hash == hash_key(key))
    ).scalar()


def rotate_key(
    conn, key_id: int, grace: timedelta, keep_session: int | None = None
) -> tuple[str, datetime | None]:
    """Give the key a new secret; the current one stays valid for ingest for `grace`.

    Returns (new plaintext, when the previous key stops working). Only one previous key
    is kept: rotating again within the grace period ends the older one at once. Every
    dashboard session of the key ends but `keep_session` (the browser that rotated it):
    whoever signed in with the old key must sign in with the new one.
    """
    current = conn.execute(select(api_keys.c.key_hash).where(api_keys.c.id == key_id)).scalar()
    if current is None:
        raise LookupError(f"no key id={key_id}")
    key = generate_key()
    until = utcnow() + grace if grace > timedelta(0) else None
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(
            key_hash=hash_key(key),
            previous_key_hash=bytes(current) if until else None,
            previous_key_expires_at=until,
        )
    )
    end_sessions(conn, key_id, keep=keep_session)
    return key, until


def touch_key(conn, key_id: int) -> None:
    """Record activity (ingest or sign-in) at most once an hour per key."""
    now = utcnow()
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.last_active_at < now - ACTIVITY_RESOLUTION)
        .values(last_active_at=now)
    )


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


def delete_key_data(conn, key_id: int) -> None:
    """Remove the key and every row it owns (call inside one transaction), then call
    `remove_key_files` once it has committed.

    The key row goes first, and every per-key table cascades from it. It waits for an
    ingest request writing the key's rows (which holds the key row:
    server.lake.write.hold_key) and for a worker storing one of its staged batches (the
    worker's claim holds it through the cascade), so the statements after it see and
    delete the rows they wrote; an export or compaction publishing the key's files holds
    the key row (server.lake.catalog.live_keys), so this waits for it and then deletes
    what it published, or it finds the key gone and removes its files itself.
    """
    conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
    delete_key_rows(conn, key_id)


def delete_key(key_id: int, engine=None, settings=None) -> None:
    """Everything of a key, in one transaction, then its files."""
    with (engine or get_engine()).begin() as conn:
        delete_key_data(conn, key_id)
    remove_key_files(key_id, settings)
    log.info("deleted all data of key id=%s", key_id)


def list_keys(conn) -> list[dict]:
    """Every key, for operators: its id, name, age, last use and open dashboard sessions
    (never the key or its hash)."""
    counts = (
        select(dashboard_sessions.c.key_id, func.count().label("n"))
        .group_by(dashboard_sessions.c.key_id)
        .subquery()
    )
    k = api_keys.c
    rows = conn.execute(
        select(k.id, k.name, k.created_at, k.last_active_at, k.is_demo, counts.c.n)
        .select_from(api_keys.outerjoin(counts, counts.c.key_id == k.id))
        .order_by(k.id)
    )
    return [
        {
            "id": row.id,
            "name": row.name,
            "created_at": as_utc(row.created_at),
            "last_used_at": as_utc(row.last_active_at),
            "is_demo": bool(row.is_demo),
            "sessions": row.n or 0,
        }
        for row in rows
    ]


def key_exists(conn, key_id: int) -> bool:
    if not isinstance(key_id, int) or not 0 < key_id <= 2**31 - 1:
        return False
    return conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is not None
