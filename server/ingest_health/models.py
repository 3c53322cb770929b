"""The ingest health tables (server.ingest_health): per key and UTC day, batches and rows
accepted and refused with the refusal reasons counted; each client seen; the latest
refused rows (masked), at most RECENT a key."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from server.db import BigId, metadata

TS = DateTime(timezone=True)


def _key_id(primary: bool = False) -> Column:
    return Column(
        "key_id",
        Integer,
        ForeignKey("api_keys.id", ondelete="CASCADE"),
        primary_key=primary,
        nullable=False,
    )


ingest_days = Table(
    "ingest_days",
    metadata,
    _key_id(primary=True),
    Column("day", Integer, primary_key=True),  # days since 1970-01-01, UTC
    Column("batches", BigInteger, nullable=False, default=0),
    Column("batches_refused", BigInteger, nullable=False, default=0),  # every row refused
    Column("accepted", BigInteger, nullable=False, default=0),
    Column("refused", BigInteger, nullable=False, default=0),
)

ingest_reasons = Table(
    "ingest_reasons",
    metadata,
    _key_id(primary=True),
    Column("day", Integer, primary_key=True),
    Column("reason", String(64), primary_key=True),  # the refused field, e.g. "status"
    Column("rows", BigInteger, nullable=False, default=0),
)

ingest_clients = Table(
    "ingest_clients",
    metadata,
    _key_id(primary=True),
    Column("framework", String(64), primary_key=True),  # as sent ("" when none)
    Column("client", String(200), primary_key=True),  # the User-Agent of its batches
    Column("first_at", TS, nullable=False),
    Column("last_at", TS, nullable=False),
    Column("batches", BigInteger, nullable=False, default=0),
    Column("last_accepted", BigInteger, nullable=False, default=0),
    Column("last_refused", BigInteger, nullable=False, default=0),
)

ingest_refusals = Table(
    "ingest_refusals",
    metadata,
    Column("id", BigId, primary_key=True),
    _key_id(),
    Column("at", TS, nullable=False),
    Column("framework", String(64)),
    Column("batch_index", Integer, nullable=False),  # the row's index in its batch
    Column("reason", Text, nullable=False),
    Column("row", Text, nullable=False),  # JSON, secrets masked (server.ingest_health.record)
    Index("ix_ingest_refusals_key_id", "key_id", "id"),
    sqlite_autoincrement=True,
)
