"""Tables. Every per-key table has a key_id column, which is how DELETE /api/data finds them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from server.db import BigId, IpAddress, metadata

TS = DateTime(timezone=True)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    # SHA-256 of the key: the plaintext is shown once and never stored.
    Column("key_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    # Bumped on ingest and dashboard sign-in; retention deletes keys idle for 6 months.
    Column("last_active_at", TS, nullable=False),
    Column("is_demo", Boolean, nullable=False, default=False),
)

# An accepted batch waits here (durably) until a worker has enriched it; the worker
# deletes it in the same transaction that writes its rows, so it is processed once.
ingest_batches = Table(
    "ingest_batches",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("framework", String(64)),
    Column("privacy_level", SmallInteger, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Index("ix_ingest_batches_created_at", "created_at"),
)

user_agents = Table(
    "user_agents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_agent", String(255), nullable=False, unique=True),
    Column("browser", String(64), nullable=False),
    Column("os", String(64), nullable=False),
    Column("device", String(16), nullable=False),
    Column("is_bot", Boolean, nullable=False),
)

# The hot table. No foreign keys: a per-row FK check would tax every COPY, and
# rows are only ever deleted by key or by age, never through a parent.
requests = Table(
    "requests",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("hostname", String(255)),
    Column("path", String(255), nullable=False),
    Column("method", String(7), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("response_time", Integer, nullable=False),
    Column("ip_address", IpAddress),
    Column("location", String(2)),
    Column("user_agent_id", Integer),
    Column("user_id", String(255)),
    Column("framework", String(64)),
    Index("ix_requests_key_created", "key_id", "created_at", "id"),
)

monitors = Table(
    "monitors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("method", String(4), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("key_id", "url", "method", name="uq_monitors_key_url_method"),
)

pings = Table(
    "pings",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("status", SmallInteger),
    Column("response_time", Integer),
    Column("error", String(64)),
    Index("ix_pings_monitor_created", "monitor_id", "created_at"),
)


def key_tables():
    """Every table holding a key's data, children first (delete order)."""
    return [t for t in reversed(metadata.sorted_tables) if "key_id" in t.c]
