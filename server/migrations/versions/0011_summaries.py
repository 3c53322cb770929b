"""A closed month's pre-computed answers are its file's summary: lake_files.digest is
renamed summary ("digest" stays the word for an ingest batch's hash).

Revision ID: 0011_summaries
Revises: 0010_alerts
Create Date: 2026-12-07
"""

from alembic import op

revision = "0011_summaries"
down_revision = "0010_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lake_files") as batch:
        batch.alter_column("digest", new_column_name="summary")


def downgrade() -> None:
    with op.batch_alter_table("lake_files") as batch:
        batch.alter_column("summary", new_column_name="digest")
