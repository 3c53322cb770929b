"""Rollup inbox: enriched rows wait here until a refresh adds them to the rollups.

Revision ID: 0005_rollup_inbox
Revises: 0004_ingest_receipts
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_rollup_inbox"
down_revision = "0004_ingest_receipts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    text = sa.String
    op.create_table(
        "rollup_inbox",
        sa.Column("id", big_id, nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.BigInteger(), nullable=False),
        sa.Column("hod", sa.SmallInteger(), nullable=False),
        sa.Column("hostname", text(255), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("bot", sa.SmallInteger(), nullable=False),
        sa.Column("method", text(7), nullable=False),
        sa.Column("endpoint", text(255), nullable=False),
        sa.Column("has_query", sa.SmallInteger(), nullable=False),
        sa.Column("has_ids", sa.SmallInteger(), nullable=False),
        sa.Column("location", text(2), nullable=False),
        sa.Column("browser", text(64), nullable=False),
        sa.Column("os", text(64), nullable=False),
        sa.Column("device", text(16), nullable=False),
        sa.Column("user_key", text(255), nullable=False),
        sa.Column("seen", text(12), nullable=False),
        sa.Column("is_404", sa.SmallInteger(), nullable=False),
        sa.Column("rt", sa.Integer(), nullable=False),
        sa.Column("hb", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_inbox")),
    )


def downgrade() -> None:
    op.drop_table("rollup_inbox")
