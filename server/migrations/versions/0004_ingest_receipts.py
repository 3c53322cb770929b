"""Ingest receipts for Idempotency-Key retries; joins the rollups and monitors branches.

Revision ID: 0004_ingest_receipts
Revises: 0002_rollups, 0003_ping_rounds
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_ingest_receipts"
down_revision = ("0002_rollups", "0003_ping_rounds")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_receipts",
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_ingest_receipts_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", "idempotency_key", name=op.f("pk_ingest_receipts")),
    )
    op.create_index("ix_ingest_receipts_created_at", "ingest_receipts", ["created_at"])


def downgrade() -> None:
    op.drop_table("ingest_receipts")
