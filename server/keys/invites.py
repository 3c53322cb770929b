"""Who may make keys (SIGNUP), and operators' single-use invitations.

- open: anyone (POST /api/keys, GET /api/generate, the dashboard's Create a key); the
  embedded default.
- closed: only an operator (`flask --app wsgi keys create`, POST /api/admin/keys with
  ADMIN_TOKEN); the default when APP_ENV=production.
- invite: an operator and whoever holds an invitation: a link /dashboard/invite#<token>
  (the token rides in the fragment, which browsers never send, so it reaches no server
  log or Referer; the page posts it in a form's body) or the token as `invite` in the
  body of POST /api/keys. 256 random bits, stored as its SHA-256, used once.

Every way anyone but an operator makes a key is also rate limited per client address
(KEY_CREATE_PER_HOUR, server.ratelimit).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from server.db import as_utc, utcnow
from server.keys.api_keys import clean_name, create_key
from server.models import invites

INVITE_PATH = "/dashboard/invite"
DEFAULT_DAYS = 7
MAX_DAYS = 365
LABEL_MAX = 100
TOKEN_MAX = 128
MAX_ID = 2**31 - 1

CLOSED = (
    "Sign-up is closed on this server: ask its operator for a key (they make one with "
    "`flask --app wsgi keys create --name ...`)."
)
BY_INVITE = (
    "Sign-up on this server is by invitation: open the invite link its operator sent you "
    "(or send its code as 'invite' in the body)."
)
BAD_INVITE = "This invitation was used already, revoked, expired, or never existed."


class SignupRefused(Exception):
    """Nobody but an operator may make a key this way now; str() says why and what to do."""


def check_signup(mode: str, invite: str | None) -> None:
    """Whether a key may be made by someone who is not an operator, given the invitation
    they bring (SignupRefused if not; the invitation itself is checked when redeemed)."""
    if mode == "open":
        return
    if mode == "invite" and invite:
        return
    raise SignupRefused(BY_INVITE if mode == "invite" else CLOSED)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(b"invite:" + token.encode("utf-8", "surrogatepass")).digest()


def invite_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{INVITE_PATH}#{token}"


def create_invite(
    conn, label: str | None = None, days: int = DEFAULT_DAYS, now: datetime | None = None
) -> tuple[int, str]:
    """An invitation valid for `days`: (its id, its token, shown once)."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"An invitation lasts 1 to {MAX_DAYS} days, not {days!r}.")
    if label is not None:
        label = label.strip()[:LABEL_MAX] or None
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    invite_id = conn.execute(
        insert(invites)
        .values(
            token_hash=hash_token(token),
            label=label,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        .returning(invites.c.id)
    ).scalar_one()
    return invite_id, token


def redeem_invite(conn, token, name: str | None = None, now: datetime | None = None):
    """Make a key with the invitation, in the caller's transaction: (key id, key).
    ValueError (BAD_INVITE) when it cannot be used; of two at once, one gets the key."""
    if not isinstance(token, str) or not token.strip() or len(token) > TOKEN_MAX:
        raise ValueError(BAD_INVITE)
    if name is not None:
        name = clean_name(name)
    now = now or utcnow()
    i = invites.c
    digest = hash_token(token.strip())
    claimed = conn.execute(
        update(invites)
        .where(
            i.token_hash == digest,
            i.used_at.is_(None),
            i.revoked_at.is_(None),
            i.expires_at > now,
        )
        .values(used_at=now)
        .returning(i.id, i.label)
    ).first()
    if claimed is None:
        raise ValueError(BAD_INVITE)
    key_id, key = create_key(conn, name=name or claimed.label)
    conn.execute(update(invites).where(i.id == claimed.id).values(key_id=key_id))
    return key_id, key


def state_of(row, now: datetime) -> str:
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if as_utc(row.expires_at) <= now else "pending"


def list_invites(conn, now: datetime | None = None) -> list[dict]:
    """Every invitation, newest first: never its token or hash."""
    now = now or utcnow()
    rows = conn.execute(select(invites).order_by(invites.c.id.desc()))
    return [
        {
            "id": row.id,
            "label": row.label,
            "created_at": as_utc(row.created_at),
            "expires_at": as_utc(row.expires_at),
            "used_at": as_utc(row.used_at),
            "key_id": row.key_id,
            "state": state_of(row, now),
        }
        for row in rows
    ]


def revoke_invite(conn, invite_id: int, now: datetime | None = None) -> bool:
    """Revoke a pending invitation; False when there is no pending one of that id."""
    if not isinstance(invite_id, int) or not 0 < invite_id <= MAX_ID:
        return False
    i = invites.c
    result = conn.execute(
        update(invites)
        .where(i.id == invite_id, i.used_at.is_(None), i.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return result.rowcount > 0
