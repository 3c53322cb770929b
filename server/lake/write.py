"""Writing rows into the hot table, and the protocol that lets the export know which rows
are complete: a writer holds LAKE_WRITE_LOCK shared for its transaction (PostgreSQL) or
the database's write lock (SQLite), and the key row, so a key's deletion waits for it.
"""

from __future__ import annotations

from sqlalchemy import select

from server.db import copy_rows, is_postgres, write_lock
from server.lake.layout import REQUESTS, Dataset
from server.models import api_keys

# Readers and writers of the hot table: a write holds this PostgreSQL advisory lock
# shared for its transaction; the export takes it exclusively for an instant to find a
# boundary no transaction still writes below (server.lake.export.seal).
LAKE_WRITE_LOCK = 72_045_812


def hold_key(conn, key_id: int) -> bool:
    """Keep the key from being deleted until this transaction ends; False if it is gone.

    Rows of the hot table name their key without a foreign key (server.lake.models), so
    a writer holds the key row itself: a DELETE /api/data waits for the write to commit
    and then deletes its rows too. SQLite: the write lock first, so the key cannot go
    between this check and the commit.
    """
    write_lock(conn)
    if is_postgres(conn):
        found = conn.exec_driver_sql(
            "SELECT 1 FROM api_keys WHERE id = %(id)s FOR KEY SHARE", {"id": key_id}
        ).first()
    else:
        found = conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
    return found is not None


def store_rows(conn, rows: list[tuple], dataset: Dataset = REQUESTS) -> None:
    """Rows (the dataset's write_names order) into its hot table, in the caller's
    transaction.

    On PostgreSQL, COPY (4x faster than INSERT, bench/README.md) under the shared write
    lock, so the export can tell which rows are complete.
    """
    if not rows:
        return
    if not is_postgres(conn):
        _insert(conn, rows, dataset)
        return
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({LAKE_WRITE_LOCK})")
    copy_rows(conn, dataset.table, dataset.write_names, rows)


def _insert(conn, rows: list[tuple], dataset: Dataset) -> None:
    """SQLite: one executemany on the driver (its write lock serialises it with the export)."""
    names = dataset.write_names
    marks = ", ".join("?" * len(names))
    conn.connection.dbapi_connection.cursor().executemany(
        f"INSERT INTO {dataset.table} ({', '.join(names)}) VALUES ({marks})", rows
    )
