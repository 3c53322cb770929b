"""Keys with a name and a rotation grace period; read-only share links.

- api_keys.name: what the owner calls the API (shown in the dashboard's header).
- api_keys.previous_key_hash / previous_key_expires_at: after a rotation, the previous
  key's hash, accepted for ingest only until then (KEY_ROTATION_GRACE_HOURS).
- share_links: one row per link to a key's dashboard; only the token's SHA-256 is kept.
  Deleting a key deletes its links (the foreign key cascades, and DELETE /api/data
  deletes every table with a key_id).

Revision ID: 0009_keys_shares
Revises: 0008_lake
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_keys_shares"
down_revision = "0008_lake"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("name", sa.String(100)))
        batch.add_column(sa.Column("previous_key_hash", sa.LargeBinary(32)))
        batch.add_column(sa.Column("previous_key_expires_at", TS))
        batch.create_index("ix_api_keys_previous_key_hash", ["previous_key_hash"])
    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column(
            "key_id",
            sa.Integer,
            sa.ForeignKey("api_keys.id", ondelete="CASCADE", name="fk_share_links_key_id_api_keys"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("label", sa.String(100)),
        sa.Column("hostname", sa.String(255)),
        sa.Column("filters", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_share_links"),
        sa.UniqueConstraint("token_hash", name="uq_share_links_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_share_links_key_id", "share_links", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_share_links_key_id", table_name="share_links")
    op.drop_table("share_links")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_previous_key_hash")
        batch.drop_column("previous_key_expires_at")
        batch.drop_column("previous_key_hash")
        batch.drop_column("name")
