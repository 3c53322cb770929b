"""Caps on what one key may make: share links, monitors, alert rules and channels, masking
patterns, dashboard sessions. Past a cap, CapReached names it (the API answers 409).

A cap holds under concurrency: `ensure_room` first holds the key row until the
transaction ends (PostgreSQL: FOR NO KEY UPDATE, which ingest's FOR KEY SHARE does not
wait for; SQLite: the database's write lock, one writer at a time), then counts, so of
two requests at once for the last place, the second counts after the first inserted.
Call it in the transaction that inserts the row, before the insert.
"""

from __future__ import annotations

from sqlalchemy import func, select

from server.db import is_postgres, write_lock

# Fixed caps (the others are settings: MONITOR_LIMIT, SHARE_LIMIT, SESSION_LIMIT).
ALERT_RULES = 50  # enough for any team, few enough that one evaluation stays quick
ALERT_CHANNELS = 20
MASKS = 100


class CapReached(Exception):
    """The key has as many of these as it may; str() names the cap and what to do."""

    def __init__(self, what: str, limit: int, setting: str | None = None) -> None:
        self.what, self.limit, self.setting = what, limit, setting
        source = f" (the server's {setting})" if setting else ""
        super().__init__(
            f"This key has {limit} {what}, the most it may have{source}: delete one first."
        )


def hold_key_row(conn, key_id: int) -> None:
    """Serialise, until this transaction ends, whatever counts and adds to the key's rows."""
    if is_postgres(conn):
        conn.exec_driver_sql(
            "SELECT 1 FROM api_keys WHERE id = %(id)s FOR NO KEY UPDATE", {"id": key_id}
        )
    else:
        write_lock(conn)


def ensure_room(
    conn, key_id: int, table, limit: int, what: str, setting: str | None = None, where=()
) -> None:
    """Raise CapReached unless the key has fewer than `limit` rows of `table` (those
    matching `where` too); the key row stays held until the transaction ends."""
    hold_key_row(conn, key_id)
    count = conn.execute(
        select(func.count()).select_from(table).where(table.c.key_id == key_id, *where)
    ).scalar_one()
    if count >= limit:
        raise CapReached(what, limit, setting)
