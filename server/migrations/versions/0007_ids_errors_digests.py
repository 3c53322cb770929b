"""Key ids that never repeat, when a staged batch last failed, and what a receipt answered.

- api_keys on SQLite becomes AUTOINCREMENT: without it SQLite hands a deleted key's id
  to the next key created, and anything that still names the old id (a dashboard
  session, a share) would open the new key's data. PostgreSQL's sequence never repeats.
- ingest_batches.last_error_at: when `last_error` was written (`flask --app wsgi batches`).
- ingest_receipts.body_digest: the SHA-256 of the batch an Idempotency-Key answered for,
  so the same key sent with other rows is refused instead of answered as a replay.

Revision ID: 0007_ids_errors_digests
Revises: 0006_staged_lz4
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_ids_errors_digests"
down_revision = "0006_staged_lz4"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _rebuild_api_keys(autoincrement: bool) -> None:
    """SQLite sets AUTOINCREMENT only when a table is created: copy it into a new one.

    server/migrations/env.py runs SQLite migrations with foreign keys off, so dropping
    the old table does not cascade into the tables that refer to it.
    """
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "api_keys", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild_api_keys(autoincrement=True)
    with op.batch_alter_table("ingest_batches") as batch:
        batch.add_column(sa.Column("last_error_at", TS))
    with op.batch_alter_table("ingest_receipts") as batch:
        batch.add_column(sa.Column("body_digest", sa.LargeBinary(32)))


def downgrade() -> None:
    with op.batch_alter_table("ingest_receipts") as batch:
        batch.drop_column("body_digest")
    with op.batch_alter_table("ingest_batches") as batch:
        batch.drop_column("last_error_at")
    _rebuild_api_keys(autoincrement=False)
