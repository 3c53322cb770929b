"""Deleting everything stored for a key: its rows in every store, its files, the key."""

from __future__ import annotations

import logging

from sqlalchemy import delete

from server.db import get_engine
from server.lake.storage import get_storage, key_prefix
from server.models import api_keys, key_tables

log = logging.getLogger(__name__)


def delete_key_data(conn, key_id: int) -> None:
    """Remove the key and every row it owns (call inside one transaction), then call
    `remove_key_files` once it has committed.

    The key row goes first. Its cascade to staged batches waits for a worker enriching
    one of them (the worker's claim holds it), so the statements after it see and delete
    the rows that worker wrote; an export or compaction publishing the key's files holds
    the key row (catalog.live_keys), so this waits for it and then deletes what it
    published, or it finds the key gone and removes its files itself.
    """
    conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
    for table in key_tables():
        conn.execute(delete(table).where(table.c.key_id == key_id))


def remove_key_files(key_id: int, settings=None) -> None:
    """Delete the key's files from storage (after its catalog rows are gone)."""
    get_storage(settings).delete_prefix(key_prefix(key_id))


def delete_key(key_id: int, engine=None, settings=None) -> None:
    """Everything of a key, in one transaction, then its files."""
    with (engine or get_engine()).begin() as conn:
        delete_key_data(conn, key_id)
    remove_key_files(key_id, settings)
    log.info("deleted all data of key id=%s", key_id)
