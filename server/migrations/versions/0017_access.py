"""Dashboard sessions kept on the server, and operators' invitations to make a key (issue 33).

- dashboard_sessions: one row per signed-in browser (the cookie holds a random token,
  only its SHA-256 is kept here); checked on every dashboard request and callback, so
  deleting the row ends the session at once. Sessions signed in before this revision
  held no such token: they end, and their browsers sign in again.
- invites: an operator's single-use invitation (SIGNUP=invite); only the token's SHA-256
  is kept. Deleting the key an invite made keeps the invite, used, without its key.

Revision ID: 0017_access
Revises: 0016_otlp
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_access"
down_revision = "0016_otlp"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column(
            "key_id",
            sa.Integer,
            sa.ForeignKey(
                "api_keys.id", ondelete="CASCADE", name="fk_dashboard_sessions_key_id_api_keys"
            ),
            nullable=False,
        ),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("user_agent", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_dashboard_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_dashboard_sessions_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_dashboard_sessions_key_id", "dashboard_sessions", ["key_id"])
    op.create_table(
        "invites",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("label", sa.String(100)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.Column(
            "key_id",
            sa.Integer,
            sa.ForeignKey("api_keys.id", ondelete="SET NULL", name="fk_invites_key_id_api_keys"),
        ),
        sa.Column("revoked_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_invites"),
        sa.UniqueConstraint("token_hash", name="uq_invites_token_hash"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("invites")
    op.drop_index("ix_dashboard_sessions_key_id", table_name="dashboard_sessions")
    op.drop_table("dashboard_sessions")
