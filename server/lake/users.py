"""Each key's users, numbered: rows carry a user's number (`ux`) instead of its text.

A user is its IP address, else its user id (server.rules.user_key). Numbers come from
one sequence, so one key's users hold nearby numbers: the engine counts distinct users
per bucket as bitmaps over that range, and groups by an integer, instead of hashing text
per row (bench/README.md). Writers number new users before storing rows; a number, once
given, never changes or moves to another user.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from server.db import is_postgres
from server.models import key_users

MAX_CACHED = 500_000
_cache: dict[str, dict[tuple[int, str], int]] = {}
_lock = threading.Lock()


def number_users(bind, pairs) -> dict[tuple[int, str], int]:
    """{(key id, user key): number} for every pair, numbering those not seen before.

    `bind` is an Engine (a short transaction of its own; answers are cached) or a
    Connection (the caller's transaction; nothing is cached, since it may roll back).
    """
    pairs = {(int(k), u) for k, u in pairs if u}
    if not pairs:
        return {}
    own = isinstance(bind, Engine)
    cache = _cache.setdefault(str(bind.url), {}) if own else {}
    found = {p: cache[p] for p in pairs if p in cache}
    missing = sorted(pairs - found.keys())
    if not missing:
        return found
    if own:
        with bind.begin() as conn:
            numbered = _number(conn, missing)
        with _lock:
            if len(cache) > MAX_CACHED:
                cache.clear()
            cache.update(numbered)
    else:
        numbered = _number(bind, missing)
    found.update(numbered)
    return found


def _number(conn, missing: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """Insert the users not yet numbered (ON CONFLICT: another writer may race us), then
    read every pair's number."""
    out: dict[tuple[int, str], int] = {}
    if is_postgres(conn):
        keys = [k for k, _u in missing]
        names = [u for _k, u in missing]
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:
            cur.execute(
                "INSERT INTO key_users (key_id, user_key) "
                "SELECT * FROM unnest(%s::int[], %s::text[]) ON CONFLICT DO NOTHING",
                (keys, names),
            )
            cur.execute(
                "SELECT k.key_id, k.user_key, k.ux FROM key_users k "
                "JOIN unnest(%s::int[], %s::text[]) AS t(key_id, user_key) "
                "USING (key_id, user_key)",
                (keys, names),
            )
            for key_id, name, ux in cur.fetchall():
                out[(key_id, name)] = ux
        return out
    raw = conn.connection.dbapi_connection
    cur = raw.cursor()
    cur.executemany("INSERT OR IGNORE INTO key_users (key_id, user_key) VALUES (?, ?)", missing)
    by_key: dict[int, list[str]] = {}
    for key_id, name in missing:
        by_key.setdefault(key_id, []).append(name)
    for key_id, names in by_key.items():
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = cur.execute(
                f"SELECT user_key, ux FROM key_users WHERE key_id = ? AND user_key IN ({marks})",
                [key_id, *chunk],
            ).fetchall()
            for name, ux in rows:
                out[(key_id, name)] = ux
    return out


def forget() -> None:
    """Drop cached numbers (tests that recreate a database under the same URL)."""
    with _lock:
        _cache.clear()


# --- readers -------------------------------------------------------------------------------


def number_of(conn, key_id: int, user_key: str) -> int | None:
    return conn.execute(
        select(key_users.c.ux).where(
            key_users.c.key_id == key_id, key_users.c.user_key == user_key[:255]
        )
    ).scalar()


def names_of(conn, numbers) -> dict[int, str]:
    numbers = [int(n) for n in numbers]
    if not numbers:
        return {}
    query = select(key_users.c.ux, key_users.c.user_key).where(key_users.c.ux.in_(numbers))
    return dict(conn.execute(query).all())


def number_span(conn, key_id: int) -> tuple[int, int] | None:
    """(lowest, highest) number among the key's users, None without users."""
    low, high = conn.execute(
        select(func.min(key_users.c.ux), func.max(key_users.c.ux)).where(
            key_users.c.key_id == key_id
        )
    ).one()
    return None if low is None else (int(low), int(high))
