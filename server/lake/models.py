"""The columnar store's tables: the hot table of newest rows, the dimensions rows point to
(users, user agents) and the catalog of Parquet files."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from server.db import BigId, metadata
from server.lake.layout import DETAILS, PAYLOADS, REQUESTS, Dataset

TS = DateTime(timezone=True)

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


# The hot table: enriched rows not yet in the columnar store (server.lake), or exported
# less than a grace period ago. Its layout is server.lake.layout's. No foreign keys: a
# per-row FK check would tax every COPY, and rows are only deleted by key or by id range.
def hot_table(dataset: Dataset) -> Table:
    return Table(
        dataset.table,
        metadata,
        *(
            Column(c.name, BigId, primary_key=True) if c.name == "id" else Column(c.name, c.hot)
            for c in dataset.columns
        ),
        # Readers take a key's rows past the exported boundary: id > boundary.
        Index(f"ix_{dataset.table}_key_id", "key_id", "id"),
        # Ids must only grow: a row given an id at or below the boundary would never be
        # read or exported. SQLite reuses the largest free id without AUTOINCREMENT (after
        # the hot table is trimmed empty, it starts again at 1); PostgreSQL's sequence never
        # does.
        sqlite_autoincrement=True,
    )


requests = hot_table(REQUESTS)
# A request's exception and validation errors, and its captured headers and bodies, in
# hot tables of their own (server.lake.layout.DETAILS, PAYLOADS).
request_details = hot_table(DETAILS)
request_payloads = hot_table(PAYLOADS)
HOT_TABLES = {
    REQUESTS.name: requests,
    DETAILS.name: request_details,
    PAYLOADS.name: request_payloads,
}

# Each key's users (an IP address, else a user id), numbered: rows carry the number
# (`ux`), which the engine counts and groups far faster than text (server.lake.users).
key_users = Table(
    "key_users",
    metadata,
    Column("ux", BigId, primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("user_key", String(255), nullable=False),
    UniqueConstraint("key_id", "user_key", name="uq_key_users_key_id"),
    Index("ix_key_users_key_id", "key_id", "ux"),
)


# --- The columnar store's catalog (server.lake) --------------------------------------------
# One row per Parquet file. A file holds one key's rows of one UTC month, sorted by time.
# Files replaced by compaction are retired, not deleted, and removed from storage a grace
# period later, so a reader that listed them a moment ago can still read them.
lake_files = Table(
    "lake_files",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("month", Integer, nullable=False),  # YYYYMM
    Column("path", String(255), nullable=False, unique=True),
    Column("rows", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    # The first and last created_at in the file, epoch microseconds.
    Column("min_us", BigInteger, nullable=False),
    Column("max_us", BigInteger, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("retired_at", TS),
    # The file's distinct hostnames, JSON: the hostname menu is read from here.
    Column("hostnames", Text, nullable=False, default="[]"),
    # Its summary's name (server.lake.summaries), once it has one: a closed month's files.
    Column("summary", String(300)),
    # Which dataset's rows it holds (server.lake.layout.DATASETS).
    Column("dataset", String(16), nullable=False, default="requests"),
    Index("ix_lake_files_key_id", "key_id", "month"),
)

# The export boundary of each dataset: its hot rows with id <= exported_id are in files
# (a row per dataset, id = the dataset's state_id: 1 is the requests').
lake_state = Table(
    "lake_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("exported_id", BigInteger, nullable=False),
)

# Each export's boundary and when it was published: hot rows up to a boundary published
# longer ago than the grace period are deleted from the hot table.
lake_exports = Table(
    "lake_exports",
    metadata,
    Column("dataset", String(16), primary_key=True, default="requests"),
    Column("boundary", BigInteger, primary_key=True),
    Column("committed_at", TS, nullable=False),
)
