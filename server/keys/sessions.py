"""Dashboard sessions, kept on the server: one row per signed-in browser.

The browser's (signed) cookie holds a random token of 256 bits; the table holds only its
SHA-256, the key it opens, when it was made and last seen, and the browser's user
agent. Every dashboard request and callback looks the token up (dash_app.session), so a
session ends at once when its row goes: sign-out, the settings page or the API ending it,
a rotation, the key's deletion (the foreign key cascades), SESSION_IDLE_DAYS without a
request or SESSION_MAX_DAYS after its sign-in. A key has at most SESSION_LIMIT open
sessions (server.keys.caps).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, select, update

from server.db import as_utc, utcnow
from server.keys.caps import ensure_room
from server.models import dashboard_sessions

# last_seen_at is written at most this often per session, not on every callback.
TOUCH_EVERY = timedelta(minutes=1)
USER_AGENT_MAX = 200
TOKEN_MAX = 128
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta
    limit: int

    @classmethod
    def of(cls, settings) -> Lifetimes:
        return cls(
            timedelta(days=settings.SESSION_IDLE_DAYS),
            timedelta(days=settings.SESSION_MAX_DAYS),
            settings.SESSION_LIMIT,
        )


@dataclass(frozen=True)
class Session:
    id: int
    key_id: int
    created_at: datetime
    last_seen_at: datetime


def hash_token(token: str) -> bytes:
    # 256 random bits: a fast hash is right, as for keys (server.keys.api_keys.hash_key).
    return hashlib.sha256(b"dashboard-session:" + token.encode("utf-8", "surrogatepass")).digest()


def _expired(lifetimes: Lifetimes, now: datetime):
    s = dashboard_sessions.c
    return or_(s.last_seen_at < now - lifetimes.idle, s.created_at < now - lifetimes.absolute)


def start_session(
    conn, key_id: int, user_agent: str | None, lifetimes: Lifetimes, now: datetime | None = None
) -> tuple[int, str]:
    """A new session for the key: (its id, the token for the cookie). The key's expired
    sessions go first; CapReached when it still has `lifetimes.limit` open ones."""
    now = now or utcnow()
    s = dashboard_sessions.c
    ensure_room(conn, key_id, dashboard_sessions, lifetimes.limit, "open dashboard sessions",
                "SESSION_LIMIT", where=[~_expired(lifetimes, now)])  # fmt: skip
    conn.execute(delete(dashboard_sessions).where(s.key_id == key_id, _expired(lifetimes, now)))
    token = secrets.token_urlsafe(32)
    agent = (user_agent or "").strip()[:USER_AGENT_MAX] or None
    session_id = conn.execute(
        insert(dashboard_sessions)
        .values(
            key_id=key_id,
            token_hash=hash_token(token),
            created_at=now,
            last_seen_at=now,
            user_agent=agent,
        )
        .returning(s.id)
    ).scalar_one()
    return session_id, token


def resolve_session(
    conn, token, lifetimes: Lifetimes, now: datetime | None = None
) -> tuple[Session | None, bool]:
    """(the live session the token opens or None, whether a row exists that has expired)."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        return None, False
    digest = hash_token(token)
    s = dashboard_sessions.c
    row = conn.execute(
        select(s.id, s.key_id, s.token_hash, s.created_at, s.last_seen_at).where(
            s.token_hash == digest
        )
    ).first()
    if row is None or not hmac.compare_digest(bytes(row.token_hash), digest):
        return None, False
    now = now or utcnow()
    created, seen = as_utc(row.created_at), as_utc(row.last_seen_at)
    if seen < now - lifetimes.idle or created < now - lifetimes.absolute:
        return None, True
    return Session(row.id, row.key_id, created, seen), False


def due_for_touch(session: Session, now: datetime | None = None) -> bool:
    return (now or utcnow()) - session.last_seen_at >= TOUCH_EVERY


def touch_session(conn, session_id: int, now: datetime | None = None) -> None:
    """Record that the session was used (the caller asks at most once a TOUCH_EVERY)."""
    now = now or utcnow()
    s = dashboard_sessions.c
    conn.execute(
        update(dashboard_sessions)
        .where(s.id == session_id, s.last_seen_at < now - TOUCH_EVERY)
        .values(last_seen_at=now)
    )


def list_sessions(conn, key_id: int, lifetimes: Lifetimes, now: datetime | None = None) -> list:
    """The key's open sessions, the last seen first: never their tokens or hashes."""
    now = now or utcnow()
    s = dashboard_sessions.c
    rows = conn.execute(
        select(s.id, s.created_at, s.last_seen_at, s.user_agent)
        .where(s.key_id == key_id, ~_expired(lifetimes, now))
        .order_by(s.last_seen_at.desc(), s.id.desc())
    )
    found = []
    for row in rows:
        created, seen = as_utc(row.created_at), as_utc(row.last_seen_at)
        found.append(
            {
                "id": row.id,
                "created_at": created,
                "last_seen_at": seen,
                "user_agent": row.user_agent,
                "expires_at": min(seen + lifetimes.idle, created + lifetimes.absolute),
            }
        )
    return found


def end_session(conn, key_id: int, session_id: int) -> bool:
    """End one of the key's sessions at once; False when it has no such session."""
    if not isinstance(session_id, int) or not 0 < session_id <= MAX_ID:
        return False
    s = dashboard_sessions.c
    result = conn.execute(delete(dashboard_sessions).where(s.key_id == key_id, s.id == session_id))
    return result.rowcount > 0


def end_sessions(conn, key_id: int, keep: int | None = None) -> int:
    """End every session of the key (but `keep`'s); how many ended."""
    s = dashboard_sessions.c
    query = delete(dashboard_sessions).where(s.key_id == key_id)
    if keep is not None:
        query = query.where(s.id != keep)
    return conn.execute(query).rowcount


def end_expired(conn, lifetimes: Lifetimes, now: datetime | None = None) -> int:
    """Every key's expired sessions (a sign-in also removes its own key's)."""
    return conn.execute(
        delete(dashboard_sessions).where(_expired(lifetimes, now or utcnow()))
    ).rowcount
