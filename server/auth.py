"""The one auth check of every request a key owner or an operator makes: an API key from
its header (never a URL), the admin token for operators' pages. Keys themselves are made,
hashed and looked up in server.keys.api_keys."""

from __future__ import annotations

import base64
import hmac
from datetime import datetime, timedelta

from flask import current_app, g, request
from flask_smorest import abort

from server.db import get_engine
from server.keys.api_keys import lookup_key, rotated_key_until

KEY_HEADER = "X-AUTH-TOKEN"


def rotation_grace() -> timedelta:
    return timedelta(hours=current_app.config["SETTINGS"].KEY_ROTATION_GRACE_HOURS)


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


def require_admin() -> None:
    """The operators' API: ADMIN_TOKEN in Authorization (Bearer) or answer 401; 404 while
    the operator has set no ADMIN_TOKEN (nothing to guess at)."""
    if not current_app.config["SETTINGS"].ADMIN_TOKEN:
        abort(404, message="The admin API is off: the operator has not set ADMIN_TOKEN.")
    if not admin_token_ok(request.headers.get("Authorization")):
        abort(401, message="Send the operator's ADMIN_TOKEN as 'Authorization: Bearer <token>'.")
