"""The ingest health tables (server.ingest_health): per key and UTC day, batches and rows
accepted and refused with the refusal reasons counted; each client seen; the latest
refused rows (masked), at most RECENT a key; what our client reports of itself: its
clock's skew and the records it dropped."""

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
    # Server receive time minus client send time of its recent batches (JSON list of ms,
    # newest last), from the X-Client-Time header our client sends; none: never sent.
    Column("skews", Text),
)

# Per key and client process (its X-Client-Drops `instance`): the counters it last
# reported. They only grow in a process, so the largest seen is the latest.
ingest_drops = Table(
    "ingest_drops",
    metadata,
    _key_id(primary=True),
    Column("instance", String(64), primary_key=True),
    Column("framework", String(64), nullable=False),
    Column("client", String(200), nullable=False),
    Column("first_at", TS, nullable=False),  # first report of a drop
    Column("last_at", TS, nullable=False),  # latest report
    Column("changed_at", TS, nullable=False),  # latest report in which a counter rose
    Column("buffer_full", BigInteger, nullable=False),  # records: the buffer was full
    Column("refused", BigInteger, nullable=False),  # records of batches refused outright
    Column("failed", BigInteger, nullable=False),  # sends that failed and were retried
    Index("ix_ingest_drops_key_id", "key_id", "last_at"),
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
