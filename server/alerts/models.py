"""The alerts domain's own table: which deploy a release-regression rule fired for
(server.alerts.releases), so it fires once per deploy (migration 0020_usage_close)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, Table, UniqueConstraint

from server.db import BigId, metadata

release_alerts = Table(
    "release_alerts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    # A deploy deleted meanwhile takes its row along: the open incident then resolves.
    Column("deploy_id", BigInteger, ForeignKey("deploys.id", ondelete="CASCADE"), nullable=False),
    Column(
        "incident_id", Integer, ForeignKey("alert_incidents.id", ondelete="CASCADE"), nullable=False
    ),
    # One incident per rule and deploy, however many evaluations race.
    UniqueConstraint("rule_id", "deploy_id", name="uq_release_alerts_rule_id"),
    sqlite_autoincrement=True,
)
