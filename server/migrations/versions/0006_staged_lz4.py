"""Staged batches are compressed with lz4 on PostgreSQL (where the server has it).

A staged batch is written once and read once. PostgreSQL's default TOAST compression
(pglz) took 2.5 ms of a 1,000-row batch's insert here; lz4 takes under 1 ms for the same
size on disk (bench/README.md). Only new values are affected; without lz4 in the server
the column keeps pglz and this says so.

Revision ID: 0006_staged_lz4
Revises: 0005_rollup_inbox
Create Date: 2026-11-27
"""

from alembic import op

revision = "0006_staged_lz4"
down_revision = "0005_rollup_inbox"
branch_labels = None
depends_on = None


def _compression(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Dynamic SQL so that a server without the method (or older than 14) is caught here.
    op.execute(
        "DO $$ BEGIN "
        f"EXECUTE 'ALTER TABLE ingest_batches ALTER COLUMN payload SET COMPRESSION {method}'; "
        "EXCEPTION WHEN OTHERS THEN "
        f"RAISE NOTICE 'staged batches keep the default compression (no {method}): %', SQLERRM; "
        "END $$"
    )


def upgrade() -> None:
    _compression("lz4")


def downgrade() -> None:
    _compression("pglz")
