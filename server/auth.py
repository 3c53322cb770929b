"""The one place secrets are made, hashed and checked (API keys, the admin token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app, g, request
from flask_smorest import abort
from sqlalchemy import insert, select, update

from server.db import get_engine, utcnow
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
    if key_id is None:
        abort(401, message="Unknown or revoked API key.")
    g.key_id = key_id
    return key_id


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
