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
