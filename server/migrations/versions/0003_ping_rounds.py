"""Pings remember their scheduled round, so a check job run twice stores one ping.

Revision ID: 0003_ping_rounds
Revises: 0001_core
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_ping_rounds"
down_revision = "0001_core"
branch_labels = ("monitors",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pings") as batch:
        batch.add_column(sa.Column("scheduled_at", sa.DateTime(timezone=True)))
        batch.create_unique_constraint("uq_pings_monitor_scheduled", ["monitor_id", "scheduled_at"])


def downgrade() -> None:
    with op.batch_alter_table("pings") as batch:
        batch.drop_constraint("uq_pings_monitor_scheduled", type_="unique")
        batch.drop_column("scheduled_at")
