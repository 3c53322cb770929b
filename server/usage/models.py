"""Frozen months of usage (server.usage): the answer given when a closed month was first
asked for, kept so that every later answer is the same."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from server.db import BigId, metadata

usage_months = Table(
    "usage_months",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("month", Integer, nullable=False),  # YYYYMM
    Column("group_by", String(16), nullable=False),  # consumer | route | status_class
    Column("frozen_at", DateTime(timezone=True), nullable=False),
    # The rows counted are those with an id at most this (the store's sealed boundary when
    # it was frozen); rows of the month with a larger id arrived later: reported apart.
    Column("boundary", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    UniqueConstraint("key_id", "month", "group_by", name="uq_usage_months_key_id"),
    sqlite_autoincrement=True,
)

usage_counts = Table(
    "usage_counts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("month_id", Integer, ForeignKey("usage_months.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(263)),  # None: requests without one (no consumer sent)
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Index("ix_usage_counts_month_id", "month_id"),
)

# The owner's optional webhook told when a month closes (server.usage.closing): one a key.
# Its signing secret is derived from SECRET_KEY and this salt, as an alert channel's is.
usage_webhooks = Table(
    "usage_webhooks",
    metadata,
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("secret_salt", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per key and closed month told (or being told): the unique constraint is what
# keeps a month from being sent twice, whatever races.
usage_notices = Table(
    "usage_notices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("month", Integer, nullable=False),  # YYYYMM
    Column("status", String(8), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    # When a sender may next take it; a sender that takes it moves this past its lease.
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("last_error", Text),
    UniqueConstraint("key_id", "month", name="uq_usage_notices_key_id"),
    Index("ix_usage_notices_due", "status", "next_attempt_at"),
    sqlite_autoincrement=True,
)
