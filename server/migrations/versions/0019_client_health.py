"""What our client reports of itself (issue 35): its clock and what it dropped.

- ingest_clients.skews: the clock skew of each client's recent batches (JSON, ms).
- ingest_drops: per key and client process, the drop counters it last reported.

Revision ID: 0019_client_health
Revises: 0018_slos
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_client_health"
down_revision = "0018_slos"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("ingest_clients") as batch:
        batch.add_column(sa.Column("skews", sa.Text))
    op.create_table(
        "ingest_drops",
        sa.Column(
            "key_id",
            sa.Integer,
            sa.ForeignKey(
                "api_keys.id", ondelete="CASCADE", name="fk_ingest_drops_key_id_api_keys"
            ),
            primary_key=True,
            nullable=False,
        ),
        sa.Column("instance", sa.String(64), primary_key=True),
        sa.Column("framework", sa.String(64), nullable=False),
        sa.Column("client", sa.String(200), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("changed_at", TS, nullable=False),
        sa.Column("buffer_full", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ingest_drops_key_id", "ingest_drops", ["key_id", "last_at"])


def downgrade() -> None:
    op.drop_table("ingest_drops")
    with op.batch_alter_table("ingest_clients") as batch:
        batch.drop_column("skews")
