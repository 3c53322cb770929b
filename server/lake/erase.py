"""Erasing a key from the store: its hot rows, numbered users and catalogued files."""

from __future__ import annotations

from sqlalchemy import delete

from server.lake.models import key_users, lake_files, request_details, request_payloads, requests
from server.lake.storage import get_storage, key_prefix

# The store's tables that name a key without a foreign key to it (a per-row check would
# tax every COPY), so deleting the key row leaves them to us.
KEY_TABLES = (requests, request_details, request_payloads, key_users, lake_files)


def delete_key_rows(conn, key_id: int) -> None:
    """Delete the key's rows from the store's tables, in the caller's transaction: the one
    that deleted the key row first (server.keys.api_keys.delete_key says why first)."""
    for table in KEY_TABLES:
        conn.execute(delete(table).where(table.c.key_id == key_id))


def remove_key_files(key_id: int, settings=None) -> None:
    """Delete the key's files from storage (after its catalog rows are gone)."""
    get_storage(settings).delete_prefix(key_prefix(key_id))
