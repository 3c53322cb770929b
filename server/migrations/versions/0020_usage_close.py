"""Release-regression alerts and the usage webhook (issue 35).

- release_alerts: the deploy each release_regression rule fired for, once per deploy
  (server.alerts.models).
- usage_webhooks, usage_notices: the owner's webhook told when a month closes, and each
  month told, once (server.usage.models).

Revision ID: 0020_usage_close
Revises: 0018_slos (the lead chains it after 0019 at merge)
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_usage_close"
down_revision = "0019_client_health"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _fk(table: str, column: str, target: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", ondelete="CASCADE", name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "release_alerts",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column(
            "rule_id", sa.Integer, _fk("release_alerts", "rule_id", "alert_rules"), nullable=False
        ),  # fmt: skip
        sa.Column(
            "deploy_id",
            sa.BigInteger,
            _fk("release_alerts", "deploy_id", "deploys"),
            nullable=False,
        ),  # fmt: skip
        sa.Column(
            "incident_id",
            sa.Integer,
            _fk("release_alerts", "incident_id", "alert_incidents"),
            nullable=False,
        ),  # fmt: skip
        sa.UniqueConstraint("rule_id", "deploy_id", name="uq_release_alerts_rule_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "usage_webhooks",
        sa.Column(
            "key_id", sa.Integer, _fk("usage_webhooks", "key_id", "api_keys"), primary_key=True
        ),  # fmt: skip
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret_salt", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "usage_notices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "key_id", sa.Integer, _fk("usage_notices", "key_id", "api_keys"), nullable=False
        ),  # fmt: skip
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("key_id", "month", name="uq_usage_notices_key_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_usage_notices_due", "usage_notices", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in ("usage_notices", "usage_webhooks", "release_alerts"):
        op.drop_table(table)
