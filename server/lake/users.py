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
from server.lake.models import key_users

MAX_CACHED = 500_000
# Per database URL, per key: {user key: number}. Only committed numbers go in, and a
# full cache is replaced, never emptied in place, so a mapping a writer holds stays whole.
_cache: dict[str, dict[int, dict[str, int]]] = {}
_cached: dict[str, int] = {}
_lock = threading.Lock()


def number_users(bind, pairs) -> dict[tuple[int, str], int]:
    """{(key id, user key): number} for every pair, numbering those not seen before.

    `bind` is an Engine (a short transaction of its own; answers are cached) or a
    Connection (the caller's transaction; nothing is cached, since it may roll back).
    """
    pairs = {(int(k), u) for k, u in pairs if u}
    if not pairs:
        return {}
    if not isinstance(bind, Engine):
        return _number(bind, sorted(pairs))
    by_key: dict[int, set[str]] = {}
    for key_id, name in pairs:
        by_key.setdefault(key_id, set()).add(name)
    found = {}
    for key_id, names in by_key.items():
        known = number_names(bind, key_id, names)
        found.update(((key_id, name), known[name]) for name in names)
    return found


def number_names(engine, key_id: int, names: set[str]) -> dict[str, int]:
    """One key's users by name -> number, holding every one of `names` (numbered now if
    new; none may be empty). The mapping is the cache itself, shared: read, never change.

    The ingest of a batch asks this once for all its users: a set difference against the
    key's cache, and a lookup per row, instead of a (key, name) pair hashed per user.
    """
    url = str(engine.url)
    keys = _cache.setdefault(url, {})
    known = keys.get(key_id)
    if known is None:
        known = keys.setdefault(key_id, {})
    missing = names - known.keys()
    if not missing:
        return known
    with engine.begin() as conn:
        numbered = _number(conn, [(key_id, name) for name in sorted(missing)])
    with _lock:
        known.update((name, number) for (_k, name), number in numbered.items())
        _cached[url] = _cached.get(url, 0) + len(numbered)
        if _cached[url] > MAX_CACHED:  # start again from this key's (or batch's) users
            keep = known if len(known) <= MAX_CACHED // 2 else {n: known[n] for n in names}
            _cache[url], _cached[url] = {key_id: keep}, len(keep)
    return known


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
        _cached.clear()


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
