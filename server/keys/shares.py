"""Read-only share links to one key's dashboard: made, listed, revoked and resolved.

A link is /dashboard/s/<token>. The token (256 random bits) is shown once; only its
SHA-256 is stored, and every path that holds one is redacted before it is logged. A
link may be fixed to a hostname and to filters (the dashboard's click filters) that its
viewer cannot remove, and may expire. The web API (server.api.shares) and the
dashboard (dash_app) both use this module.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update

from server.db import as_utc, utcnow
from server.keys.caps import ensure_room
from server.models import share_links
from server.rules import CLICK_DIMS

# The click filters a link may fix: all but the user (a link names what it shows, and a
# user's address is not a thing to put in a link's settings).
FILTER_DIMS = tuple(dim for dim in CLICK_DIMS if dim not in ("user", "user_id"))
LABEL_MAX = 100
HOSTNAME_MAX = 255
VALUE_MAX = 300
SHARE_PATH = re.compile(r"(/dashboard/s/)[^/?#&\s\"]+")
REDACTED = "[redacted]"
MAX_ID = 2**31 - 1  # share_links.id is a 32-bit INTEGER on both backends
DEFAULT_LIMIT = 100  # links that still work, per key (SHARE_LIMIT)


class ShareError(ValueError):
    """Input a link cannot be made from; the message names the problem."""


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def redact_share_paths(text: str | None) -> str | None:
    """`text` with the token of every /dashboard/s/<token> path replaced."""
    if not text or "/dashboard/s/" not in text:
        return text
    return SHARE_PATH.sub(lambda m: m.group(1) + REDACTED, text)


class RedactShareTokens(logging.Filter):
    """Rewrites a log record's message so no share link token reaches a log line (Flask
    logs the path of a request that raised: "Exception on /dashboard/s/<token> [GET]")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_share_paths(record.msg)
        return True


def clean_label(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ShareError("'label' must be text.")
    value = value.strip()
    if len(value) > LABEL_MAX:
        raise ShareError(f"'label' is {len(value)} characters long; at most {LABEL_MAX}.")
    return value or None


def clean_hostname(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ShareError("'hostname' must be text.")
    value = value.strip()
    if len(value) > HOSTNAME_MAX:
        raise ShareError(f"'hostname' is longer than {HOSTNAME_MAX} characters.")
    if any(c.isspace() for c in value):
        raise ShareError(
            f"'hostname' {value!r} holds a space; give one hostname, e.g. api.example.com."
        )
    return value or None


def clean_filters(value) -> dict[str, str]:
    """{dimension: value} with every dimension known and every value well-formed."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ShareError('\'filters\' must be an object, e.g. {"status": "500"}.')
    cleaned = {}
    for dim, raw in value.items():
        if dim not in FILTER_DIMS:
            raise ShareError(f"Unknown filter '{dim}': use one of {', '.join(FILTER_DIMS)}.")
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise ShareError(f"Filter '{dim}' must be text, not {type(raw).__name__}.")
        text = str(raw).strip()
        if not text:
            continue
        if len(text) > VALUE_MAX:
            raise ShareError(f"Filter '{dim}' is longer than {VALUE_MAX} characters.")
        cleaned[dim] = _checked(dim, text)
    return cleaned


def _checked(dim: str, text: str) -> str:
    if dim == "status" and not (text.isdigit() and 100 <= int(text) <= 599):
        raise ShareError(f"Filter 'status' must be an HTTP status from 100 to 599, not {text!r}.")
    if dim == "status_class" and not re.fullmatch(r"[1-5]xx", text):
        raise ShareError(f"Filter 'status_class' must be 1xx to 5xx, not {text!r}.")
    if dim == "location":
        if not re.fullmatch(r"[A-Za-z]{2}", text):
            raise ShareError(f"Filter 'location' must be a two-letter country code, not {text!r}.")
        return text.upper()
    if dim == "endpoint":
        method, _, path = text.partition(" ")
        if not method.isalpha() or not path.startswith("/"):
            raise ShareError(
                "Filter 'endpoint' must be a method and a path, e.g. 'GET /v1/users', "
                f"not {text!r}."
            )
        return f"{method.upper()} {path}"
    return text


def clean_expiry(value: datetime | None, now: datetime | None = None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ShareError("'expires_at' needs a time zone, e.g. 2030-01-31T12:00:00Z.")
    if value <= (now or utcnow()):
        raise ShareError("'expires_at' is in the past: give a time to come, or none.")
    return value


def create_share(
    conn,
    key_id: int,
    *,
    label=None,
    hostname=None,
    filters=None,
    expires_at: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[int, str]:
    """Store a link's hash and restrictions; returns (id, token). The token is not kept.

    A key has at most `limit` (SHARE_LIMIT) links that still work (CapReached past it);
    of those that no longer do, only the newest `limit` are kept, for its list.
    """
    values = {
        "label": clean_label(label),
        "hostname": clean_hostname(hostname),
        "filters": clean_filters(filters),
        "expires_at": clean_expiry(expires_at),
    }
    now = utcnow()
    s = share_links.c
    working = [s.revoked_at.is_(None), or_(s.expires_at.is_(None), s.expires_at > now)]
    ensure_room(conn, key_id, share_links, limit, "share links", "SHARE_LIMIT", where=working)
    _forget_old_links(conn, key_id, limit, now)
    token = secrets.token_urlsafe(32)
    share_id = conn.execute(
        insert(share_links)
        .values(key_id=key_id, token_hash=hash_token(token), created_at=utcnow(), **values)
        .returning(share_links.c.id)
    ).scalar_one()
    return share_id, token


def _forget_old_links(conn, key_id: int, keep: int, now: datetime) -> None:
    """Delete the key's revoked and expired links but the newest `keep` of them."""
    s = share_links.c
    dead = (
        select(s.id)
        .where(s.key_id == key_id, or_(s.revoked_at.is_not(None), s.expires_at <= now))
        .order_by(s.id.desc())
        .offset(keep)
    )
    old = list(conn.execute(dead).scalars())
    if old:
        conn.execute(delete(share_links).where(s.id.in_(old)))


def state_of(row, now: datetime | None = None) -> str:
    if row.revoked_at is not None:
        return "revoked"
    expires = as_utc(row.expires_at)
    if expires is not None and expires <= (now or utcnow()):
        return "expired"
    return "active"


def describe(row, now: datetime | None = None) -> dict:
    """A link as its owner sees it (never its token or hash)."""
    return {
        "id": row.id,
        "label": row.label,
        "hostname": row.hostname,
        "filters": dict(row.filters or {}),
        "created_at": as_utc(row.created_at),
        "expires_at": as_utc(row.expires_at),
        "revoked_at": as_utc(row.revoked_at),
        "state": state_of(row, now),
    }


def list_shares(conn, key_id: int) -> list[dict]:
    rows = conn.execute(
        select(share_links).where(share_links.c.key_id == key_id).order_by(share_links.c.id.desc())
    )
    now = utcnow()
    return [describe(row, now) for row in rows]


def revoke_share(conn, key_id: int, share_id: int) -> bool:
    """Revoke the key's link `share_id`; False when the key has no such link."""
    if not 0 < share_id <= MAX_ID:
        return False
    row = conn.execute(
        select(share_links.c.revoked_at).where(
            share_links.c.id == share_id, share_links.c.key_id == key_id
        )
    ).first()
    if row is None:
        return False
    if row.revoked_at is None:
        conn.execute(
            update(share_links).where(share_links.c.id == share_id).values(revoked_at=utcnow())
        )
    return True


@dataclass(frozen=True)
class Access:
    """What a token opens: `state` active (then key_id and the restrictions), expired,
    or gone (revoked, or never made: a viewer cannot tell which)."""

    state: str
    key_id: int | None = None
    label: str | None = None
    hostname: str | None = None
    filters: dict = field(default_factory=dict)
    expires_at: datetime | None = None

    @property
    def fixed(self) -> tuple[tuple[str, str], ...]:
        """The restrictions as (dimension, value) pairs, hostname first."""
        pairs = [("hostname", self.hostname)] if self.hostname else []
        return tuple(pairs + sorted(self.filters.items()))


GONE = Access("gone")


def resolve_share(conn, token: str | None, now: datetime | None = None) -> Access:
    """What the link's token opens, checked against the database on every call, so a
    revoked link stops working at once, in pages already open too."""
    if not token or len(token) > 128:
        return GONE
    digest = hash_token(token)
    row = conn.execute(select(share_links).where(share_links.c.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(bytes(row.token_hash), digest):
        return GONE
    state = state_of(row, now)
    if state == "revoked":
        return GONE
    if state == "expired":
        return Access("expired", expires_at=as_utc(row.expires_at))
    return Access(
        "active",
        key_id=row.key_id,
        label=row.label,
        hostname=row.hostname,
        filters={k: v for k, v in (row.filters or {}).items() if k in FILTER_DIMS},
        expires_at=as_utc(row.expires_at),
    )
