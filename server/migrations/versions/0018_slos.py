"""SLOs, deploys, usage and ingest health (issue 35).

- slos: a key's service level objectives (server.slos.models).
- alert_rules.slo_id: the SLO a burn-rate rule watches (ON DELETE CASCADE); alert_rules.kind
  widened to 32 characters.
- deploys: a key's releases (server.deploys.models).
- usage_months, usage_counts: closed months' usage as first answered (server.usage.models).
- ingest_days, ingest_reasons, ingest_clients, ingest_refusals: what each key's clients
  sent and what was refused (server.ingest_health.models).

Revision ID: 0018_slos
Revises: 0017_access
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_slos"
down_revision = "0017_access"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _key_id(table: str, primary: bool = False) -> sa.Column:
    return sa.Column(
        "key_id",
        sa.Integer,
        sa.ForeignKey("api_keys.id", ondelete="CASCADE", name=f"fk_{table}_key_id_api_keys"),
        primary_key=primary,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "slos",
        sa.Column("id", sa.Integer, primary_key=True),
        _key_id("slos"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("objective", sa.String(16), nullable=False),
        sa.Column("include_4xx", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("threshold_ms", sa.Integer),
        sa.Column("target", sa.Float, nullable=False),
        sa.Column("window_days", sa.SmallInteger, nullable=False),
        sa.Column("hostname", sa.String(255)),
        sa.Column("endpoints", sa.JSON, nullable=False),
        sa.Column("consumer_group", sa.String(100)),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_slos_key_id", "slos", ["key_id"])
    with op.batch_alter_table("alert_rules") as batch:
        batch.alter_column("kind", type_=sa.String(32), existing_type=sa.String(16))
        batch.add_column(
            sa.Column(
                "slo_id",
                sa.Integer,
                sa.ForeignKey("slos.id", ondelete="CASCADE", name="fk_alert_rules_slo_id_slos"),
            )
        )

    op.create_table(
        "deploys",
        sa.Column("id", BIG_ID, primary_key=True),
        _key_id("deploys"),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("deployed_at", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("hostname", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_deploys_key_id", "deploys", ["key_id", "deployed_at"])

    op.create_table(
        "usage_months",
        sa.Column("id", sa.Integer, primary_key=True),
        _key_id("usage_months"),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("group_by", sa.String(16), nullable=False),
        sa.Column("frozen_at", TS, nullable=False),
        sa.Column("boundary", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("key_id", "month", "group_by", name="uq_usage_months_key_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "usage_counts",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column(
            "month_id",
            sa.Integer,
            sa.ForeignKey(
                "usage_months.id", ondelete="CASCADE", name="fk_usage_counts_month_id_usage_months"
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(263)),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_counts_month_id", "usage_counts", ["month_id"])

    op.create_table(
        "ingest_days",
        _key_id("ingest_days", primary=True),
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("batches", sa.BigInteger, nullable=False),
        sa.Column("batches_refused", sa.BigInteger, nullable=False),
        sa.Column("accepted", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ingest_reasons",
        _key_id("ingest_reasons", primary=True),
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        sa.Column("rows", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ingest_clients",
        _key_id("ingest_clients", primary=True),
        sa.Column("framework", sa.String(64), primary_key=True),
        sa.Column("client", sa.String(200), primary_key=True),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("batches", sa.BigInteger, nullable=False),
        sa.Column("last_accepted", sa.BigInteger, nullable=False),
        sa.Column("last_refused", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ingest_refusals",
        sa.Column("id", BIG_ID, primary_key=True),
        _key_id("ingest_refusals"),
        sa.Column("at", TS, nullable=False),
        sa.Column("framework", sa.String(64)),
        sa.Column("batch_index", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("row", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_ingest_refusals_key_id", "ingest_refusals", ["key_id", "id"])


def downgrade() -> None:
    for table in ("ingest_refusals", "ingest_clients", "ingest_reasons", "ingest_days",
                  "usage_counts", "usage_months", "deploys"):  # fmt: skip
        op.drop_table(table)
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_constraint("fk_alert_rules_slo_id_slos", type_="foreignkey")
        batch.drop_column("slo_id")
        batch.alter_column("kind", type_=sa.String(16), existing_type=sa.String(32))
    op.drop_table("slos")
