"""The SLO table (server.slos). An alert rule of kind slo_fast_burn or slo_slow_burn names
one by `alert_rules.slo_id` (ON DELETE CASCADE, migration 0018_slos)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
)

from server.db import metadata

TS = DateTime(timezone=True)

slos = Table(
    "slos",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    # availability: a request is bad when it answered 5xx (4xx too with include_4xx);
    # latency: when it took longer than threshold_ms.
    Column("objective", String(16), nullable=False),
    Column("include_4xx", Boolean, nullable=False, default=False),
    Column("threshold_ms", Integer),
    Column("target", Float, nullable=False),  # percent of good requests, e.g. 99.9
    Column("window_days", SmallInteger, nullable=False),  # 7, 28 or 30, rolling
    # The scope: requests of this hostname, of these endpoints (templates or `*`
    # patterns, as the dashboard shows them), of this consumer group; none is all.
    Column("hostname", String(255)),
    Column("endpoints", JSON, nullable=False, default=list),
    Column("consumer_group", String(100)),
    Column("created_at", TS, nullable=False),
    Index("ix_slos_key_id", "key_id"),
    sqlite_autoincrement=True,
)
