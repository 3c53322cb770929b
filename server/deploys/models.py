"""The deploys table (server.deploys)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from server.db import BigId, metadata

deploys = Table(
    "deploys",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("version", String(100), nullable=False),
    # When it went live, epoch microseconds (the request rows' unit).
    Column("deployed_at", BigInteger, nullable=False),
    Column("description", Text),
    # The host it went to; none: every host of the key.
    Column("hostname", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_deploys_key_id", "key_id", "deployed_at"),
    sqlite_autoincrement=True,
)
