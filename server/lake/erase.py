"""Deleting everything stored for a key: its rows in every store, its files, the key."""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from server.db import get_engine, is_postgres, write_lock
from server.lake.storage import get_storage, key_prefix
from server.models import api_keys, key_tables

log = logging.getLogger(__name__)


def delete_key_data(conn, key_id: int) -> None:
    """Remove the key and every row it owns (call inside one transaction), then call
    `remove_key_files` once it has committed.

    The key row goes first. It waits for an ingest request writing the key's rows (which
    holds the key row: `hold_key`) and for a worker enriching one of its staged batches
    (the worker's claim holds it through the cascade), so the statements after it see and
    delete the rows they wrote; an export or compaction publishing the key's files holds
    the key row (catalog.live_keys), so this waits for it and then deletes what it
    published, or it finds the key gone and removes its files itself.
    """
    conn.execute(delete(api_keys).where(api_keys.c.id == key_id))
    for table in key_tables():
        conn.execute(delete(table).where(table.c.key_id == key_id))


def hold_key(conn, key_id: int) -> bool:
    """Keep the key from being deleted until this transaction ends; False if it is gone.

    Rows of the hot table name their key without a foreign key (server.models.requests),
    so a writer holds the key row itself: a DELETE /api/data waits for the write to
    commit and then deletes its rows too. SQLite: the write lock first, so the key
    cannot go between this check and the commit.
    """
    write_lock(conn)
    if is_postgres(conn):
        found = conn.exec_driver_sql(
            "SELECT 1 FROM api_keys WHERE id = %(id)s FOR KEY SHARE", {"id": key_id}
        ).first()
    else:
        found = conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
    return found is not None


def remove_key_files(key_id: int, settings=None) -> None:
    """Delete the key's files from storage (after its catalog rows are gone)."""
    get_storage(settings).delete_prefix(key_prefix(key_id))


def delete_key(key_id: int, engine=None, settings=None) -> None:
    """Everything of a key, in one transaction, then its files."""
    with (engine or get_engine()).begin() as conn:
        delete_key_data(conn, key_id)
    remove_key_files(key_id, settings)
    log.info("deleted all data of key id=%s", key_id)
