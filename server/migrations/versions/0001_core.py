"""Core tables: keys, staged batches, user agents, requests, monitors, pings.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_active_at", TS, nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "ingest_batches",
        sa.Column("id", BigId, nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("framework", sa.String(64)),
        sa.Column("privacy_level", sa.SmallInteger(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_ingest_batches_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_batches")),
    )
    op.create_index("ix_ingest_batches_created_at", "ingest_batches", ["created_at"])
    op.create_table(
        "user_agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=False),
        sa.Column("browser", sa.String(64), nullable=False),
        sa.Column("os", sa.String(64), nullable=False),
        sa.Column("device", sa.String(16), nullable=False),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_agents")),
        sa.UniqueConstraint("user_agent", name=op.f("uq_user_agents_user_agent")),
    )
    op.create_table(
        "requests",
        sa.Column("id", BigId, nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("hostname", sa.String(255)),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("method", sa.String(7), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("response_time", sa.Integer(), nullable=False),
        sa.Column("ip_address", sa.String(45).with_variant(postgresql.INET(), "postgresql")),
        sa.Column("location", sa.String(2)),
        sa.Column("user_agent_id", sa.Integer()),
        sa.Column("user_id", sa.String(255)),
        sa.Column("framework", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.create_index("ix_requests_key_created", "requests", ["key_id", "created_at", "id"])
    op.create_table(
        "monitors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("method", sa.String(4), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_monitors_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitors")),
        sa.UniqueConstraint("key_id", "url", "method", name="uq_monitors_key_url_method"),
    )
    op.create_table(
        "pings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("status", sa.SmallInteger()),
        sa.Column("response_time", sa.Integer()),
        sa.Column("error", sa.String(64)),
        sa.ForeignKeyConstraint(
            ["monitor_id"],
            ["monitors.id"],
            name=op.f("fk_pings_monitor_id_monitors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pings")),
    )
    op.create_index("ix_pings_monitor_created", "pings", ["monitor_id", "created_at"])


def downgrade() -> None:
    for table in ("pings", "monitors", "requests", "user_agents", "ingest_batches", "api_keys"):
        op.drop_table(table)
