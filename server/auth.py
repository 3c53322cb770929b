"""The one place secrets are made, hashed and checked (API keys, the admin token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app, g, request
from flask_smorest import abort
from sqlalchemy import insert, select, update

from server.db import as_utc, get_engine, utcnow
from server.models import api_keys

KEY_HEADER = "X-AUTH-TOKEN"
# Only touch last_active_at when it is this stale, so ingest is not a write per batch.
ACTIVITY_RESOLUTION = timedelta(hours=1)


def generate_key() -> str:
    """256 random bits, URL-safe, no padding."""
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    # A fast hash is right here: the key has 256 bits of entropy, so there is
    # nothing for a slow KDF to protect against.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def create_key(conn, *, is_demo: bool = False) -> tuple[int, str]:
    """Store a new key's hash and return (id, plaintext); the plaintext is never kept."""
    key = generate_key()
    now = utcnow()
    key_id = conn.execute(
        insert(api_keys)
        .values(key_hash=hash_key(key), created_at=now, last_active_at=now, is_demo=is_demo)
        .returning(api_keys.c.id)
    ).scalar_one()
    return key_id, key


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


def rotate_key(conn, key_id: int, grace: timedelta) -> tuple[str, datetime | None]:
    """Give the key a new secret; the current one stays valid for ingest for `grace`.

    Returns (new plaintext, when the previous key stops working). Only one previous key
    is kept: rotating again within the grace period ends the older one at once.
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
    return key, until


def rotation_grace() -> timedelta:
    return timedelta(hours=current_app.config["SETTINGS"].KEY_ROTATION_GRACE_HOURS)


def touch_key(conn, key_id: int) -> None:
    """Record activity (ingest or sign-in) at most once an hour per key."""
    now = utcnow()
    conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.last_active_at < now - ACTIVITY_RESOLUTION)
        .values(last_active_at=now)
    )


def key_from_request() -> str | None:
    """The key sent in the X-AUTH-TOKEN header (or as a Bearer token)."""
    key = request.headers.get(KEY_HEADER)
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


def require_key() -> int:
    """Resolve the request's key to its id or answer 401; the key is never echoed or logged."""
    if "api_key" in request.args:
        abort(400, message="Send the API key in the X-AUTH-TOKEN header, never in the URL.")
    key = key_from_request()
    if not key:
        abort(401, message="Missing API key: send it in the X-AUTH-TOKEN header.")
    with get_engine().connect() as conn:
        key_id = lookup_key(conn, key)
        rotated_until = None if key_id is not None else rotated_key_until(conn, key)
    if rotated_until is not None:
        abort(401, message=rotated_message(rotated_until))
    if key_id is None:
        abort(401, message="Unknown or revoked API key.")
    g.key_id = key_id
    return key_id


def rotated_message(until: datetime) -> str:
    return (
        "This API key was rotated: it is accepted for ingest only, until "
        f"{until:%Y-%m-%d %H:%M} UTC. Use the new key here."
    )


def admin_token_ok(authorization: str | None) -> bool:
    """True when the Authorization header carries ADMIN_TOKEN (Bearer, or Basic password)."""
    expected = current_app.config["SETTINGS"].ADMIN_TOKEN
    if not expected or not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    supplied = ""
    if scheme.lower() == "bearer":
        supplied = value.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        supplied = decoded.partition(":")[2]
    return hmac.compare_digest(supplied.encode(), expected.encode())
