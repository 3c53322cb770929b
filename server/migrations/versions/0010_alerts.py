"""Alerts: channels, rules, incidents, deliveries and their attempts.

Revision ID: 0010_alerts
Revises: 0009_keys_shares
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_alerts"
down_revision = "0009_keys_shares"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _key_id() -> sa.Column:
    return sa.Column(
        "key_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer, primary_key=True),
        _key_id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("target", sa.String(2048), nullable=False),
        sa.Column("secret_salt", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_alert_channels_key_id", "alert_channels", ["key_id"])
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        _key_id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("window_minutes", sa.Integer),
        sa.Column("min_requests", sa.Integer),
        sa.Column("include_4xx", sa.Boolean, nullable=False),
        sa.Column("endpoint", sa.String(263)),
        sa.Column("monitor_id", sa.Integer, sa.ForeignKey("monitors.id", ondelete="CASCADE")),
        sa.Column("consecutive", sa.Integer),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_alert_rules_key_id", "alert_rules", ["key_id"])
    op.create_table(
        "alert_rule_channels",
        sa.Column(
            "rule_id",
            sa.Integer,
            sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "channel_id",
            sa.Integer,
            sa.ForeignKey("alert_channels.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        _key_id(),
        sa.Column(
            "rule_id",
            sa.Integer,
            sa.ForeignKey("alert_rules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("value", sa.Float),
        sa.Column("resolved_value", sa.Float),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_index("ix_alert_incidents_key_id", "alert_incidents", ["key_id", "started_at"])
    op.create_index(
        "uq_alert_incidents_open",
        "alert_incidents",
        ["rule_id"],
        unique=True,
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        _key_id(),
        sa.Column(
            "incident_id", sa.Integer, sa.ForeignKey("alert_incidents.id", ondelete="CASCADE")
        ),
        sa.Column(
            "channel_id",
            sa.Integer,
            sa.ForeignKey("alert_channels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event", sa.String(8), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint(
            "incident_id", "channel_id", "event", name="uq_alert_deliveries_incident"
        ),
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "alert_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("alert_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempted_at", TS, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_alert_attempts_delivery_id", "alert_attempts", ["delivery_id"])


def downgrade() -> None:
    for table in (
        "alert_attempts",
        "alert_deliveries",
        "alert_incidents",
        "alert_rule_channels",
        "alert_rules",
        "alert_channels",
    ):
        op.drop_table(table)
