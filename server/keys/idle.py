"""Keys idle for KEY_INACTIVE_DAYS (neither ingest nor a dashboard sign-in): deleted with
all their data by the daily retention (server.upkeep); the demo key stays."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select

from server.db import as_utc, is_postgres
from server.keys.api_keys import delete_key_data
from server.lake import catalog
from server.lake.erase import remove_key_files
from server.lake.models import requests
from server.lake.retention import Budget
from server.models import api_keys

log = logging.getLogger(__name__)


def inactive_keys(conn, cutoff: datetime) -> list[int]:
    """Keys with neither ingest nor a dashboard sign-in since `cutoff` (the demo key stays)."""
    query = (
        select(api_keys.c.id)
        .where(api_keys.c.last_active_at < cutoff, api_keys.c.is_demo.is_(False))
        .order_by(api_keys.c.id)
    )
    return list(conn.execute(query).scalars())


def _still_idle(conn, key_id: int, cutoff: datetime) -> bool:
    query = select(api_keys.c.last_active_at).where(api_keys.c.id == key_id)
    if is_postgres(conn):
        # Holds off a concurrent sign-in until the deletion commits; it then finds no key.
        query = query.with_for_update()
    last_active = conn.execute(query).scalar_one_or_none()
    return last_active is not None and as_utc(last_active) < cutoff


def delete_inactive_keys(
    engine, cutoff: datetime, settings=None, budget: Budget | None = None
) -> int:
    """Delete idle keys with all their data and files; returns how many keys went.

    One short transaction a key (its hot rows are few: the rest is files, deleted after
    the commit). A key that becomes active meanwhile is left alone.
    """
    budget = budget or Budget(None)
    with engine.connect() as conn:
        key_ids = inactive_keys(conn, cutoff)
    deleted = 0
    for index, key_id in enumerate(key_ids):
        if not budget.left():
            budget.spent = True
            log.info("retention: %s idle keys left for the next run", len(key_ids) - index)
            return deleted
        with engine.begin() as conn:
            if not _still_idle(conn, key_id, cutoff):
                log.info("key id=%s became active during retention; kept", key_id)
                continue
            delete_key_data(conn, key_id)
        remove_key_files(key_id, settings)
        log.info("retention deleted idle key id=%s and its data", key_id)
        budget.progressed = True
        deleted += 1
    return deleted


def stored_rows(conn, key_ids) -> int:
    """Rows the keys hold in files and in the hot table (not yet exported)."""
    boundary = catalog.exported_id(conn)
    total = 0
    for key_id in key_ids:
        total += catalog.storage_bytes(conn, key_id)[0]
    hot = select(func.count()).where(requests.c.key_id.in_(list(key_ids)), requests.c.id > boundary)
    return total + (conn.execute(hot).scalar_one() if key_ids else 0)
