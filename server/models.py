"""Tables. Every per-key table has a key_id column, which is how DELETE /api/data finds them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
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
    # Ids never repeat (SQLite would reuse a deleted key's): sessions and shares name them.
    sqlite_autoincrement=True,
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
    # Why the last attempt failed, and when (`flask --app wsgi batches` shows them).
    Column("last_error", Text),
    Column("last_error_at", TS),
    Index("ix_ingest_batches_created_at", "created_at"),
)

# Answers to ingest requests that carried an Idempotency-Key: a client retrying a
# batch whose 201 it never saw gets the same answer, and nothing is stored twice.
ingest_receipts = Table(
    "ingest_receipts",
    metadata,
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("idempotency_key", String(128), primary_key=True),
    Column("created_at", TS, nullable=False),
    Column("answer", Text, nullable=False),
    # SHA-256 of the batch answered: the same Idempotency-Key with other rows is refused.
    Column("body_digest", LargeBinary(32)),
    Index("ix_ingest_receipts_created_at", "created_at"),
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
    # The scheduled round a check belongs to: a check job run twice stores one ping.
    Column("scheduled_at", TS),
    Index("ix_pings_monitor_created", "monitor_id", "created_at"),
    UniqueConstraint("monitor_id", "scheduled_at", name="uq_pings_monitor_scheduled"),
)


def key_tables():
    """Every table holding a key's data, children first (delete order)."""
    return [t for t in reversed(metadata.sorted_tables) if "key_id" in t.c]


# --- Rollups (written by worker.rollups in the enrichment transaction) ---------------------
# Pre-aggregated counts the dashboard reads instead of raw rows. Buckets are UTC epoch
# seconds at a grain (worker.rollups.GRAIN_*); empty text dimensions are stored as ''
# so that they can be part of the primary key the upserts conflict on. Retention keeps them.
HIST_BUCKETS = 64
HIST_COLUMNS = tuple(f"h{i:02d}" for i in range(HIST_BUCKETS))
HOUR_COLUMNS = tuple(f"hr{i:02d}" for i in range(24))


def _rollup_table(
    name: str,
    *dims: Column,
    measures: tuple[Column, ...],
    hist: bool,
    hours: bool = False,
    key: tuple[str, ...] | None = None,
) -> Table:
    base = (
        Column("key_id", Integer, nullable=False),
        Column("grain", SmallInteger, nullable=False),
        Column("bucket", BigInteger, nullable=False),
    )
    # Grains (worker.rollups): hourly rows serve windows up to 7 days, daily rows carry a
    # response-time histogram (traffic's hourly rows too) and traffic's requests per hour
    # of day, monthly rows are narrow totals for long periods. Columns a grain does not
    # fill stay NULL, which costs PostgreSQL one bit each.
    extra = tuple(Column(c, Integer) for c in HIST_COLUMNS) if hist else ()
    extra += tuple(Column(c, Integer) for c in HOUR_COLUMNS) if hours else ()
    return Table(
        name,
        metadata,
        *base,
        *dims,
        *measures,
        *extra,
        PrimaryKeyConstraint(*(key or [c.name for c in base + dims])),
    )


def _filters() -> tuple[Column, ...]:
    return (
        Column("hostname", String(255), nullable=False),
        Column("status", SmallInteger, nullable=False),
        Column("bot", SmallInteger, nullable=False),
    )


def _counts() -> tuple[Column, ...]:
    return (
        Column("n", BigInteger, nullable=False),
        Column("rt_sum", BigInteger, nullable=False),
    )


rollup_traffic = _rollup_table(
    "rollup_traffic", *_filters(), measures=_counts(), hist=True, hours=True
)

rollup_endpoints = _rollup_table(
    "rollup_endpoints",
    *_filters(),
    Column("method", String(7), nullable=False),
    # The path without its query string, ids replaced by {id} (worker.rollups.template_path).
    Column("endpoint", String(255), nullable=False),
    measures=(
        *_counts(),
        # Rows whose raw path had a query string / ids: when both stay 0 the raw-path
        # views are identical to the templated one and need no raw query.
        Column("n_query", BigInteger, nullable=False),
        Column("n_ids", BigInteger, nullable=False),
    ),
    hist=True,
)

rollup_locations = _rollup_table(
    "rollup_locations",
    *_filters(),
    Column("location", String(2), nullable=False),
    measures=_counts(),
    hist=True,
)

rollup_clients = _rollup_table(
    "rollup_clients",
    *_filters(),
    Column("browser", String(64), nullable=False),
    Column("os", String(64), nullable=False),
    Column("device", String(16), nullable=False),
    measures=_counts(),
    hist=True,
)

# Who was seen in a day or a month: the IP, or the user id where there is no IP. Each
# user is stored under its hostname and bot flag, and once more as (hostname '*', bot 2)
# so that the unfiltered view reads exactly one row per user.
rollup_users = _rollup_table(
    "rollup_users",
    Column("hostname", String(255), nullable=False),
    Column("bot", SmallInteger, nullable=False),
    Column("user_key", String(255), nullable=False),
    measures=(
        Column("n", BigInteger, nullable=False),
        Column("n_404", BigInteger, nullable=False),
        Column("last_seen", BigInteger, nullable=False),
        Column("location", String(2), nullable=False),
    ),
    hist=False,
    # Filters pick one (hostname, bot) variant, then a bucket range: both in the index.
    key=("key_id", "grain", "hostname", "bot", "bucket", "user_key"),
)

# Distinct users per day, counted when a rollup_users row is first inserted (users) and
# when a user's first non-404 request arrives (users_ok, for "exclude 404s").
rollup_user_counts = _rollup_table(
    "rollup_user_counts",
    Column("hostname", String(255), nullable=False),
    Column("bot", SmallInteger, nullable=False),
    measures=(
        Column("users", BigInteger, nullable=False),
        Column("users_ok", BigInteger, nullable=False),
    ),
    hist=False,
    key=("key_id", "grain", "hostname", "bot", "bucket"),
)

ROLLUP_TABLES = (
    rollup_traffic,
    rollup_endpoints,
    rollup_locations,
    rollup_clients,
    rollup_users,
    rollup_user_counts,
)


# Enriched rows waiting to be added to the rollups. The enrichment job writes them in
# the batch's transaction; worker.rollups.refresh_rollups moves them into the rollup
# tables (one aggregate per group, so a busy bucket is updated once per refresh, not
# once per batch) and deletes them in the same transaction: each row counts once.
rollup_inbox = Table(
    "rollup_inbox",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("hour", BigInteger, nullable=False),
    Column("day", BigInteger, nullable=False),
    Column("month", BigInteger, nullable=False),
    Column("hod", SmallInteger, nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("bot", SmallInteger, nullable=False),
    Column("method", String(7), nullable=False),
    Column("endpoint", String(255), nullable=False),
    Column("has_query", SmallInteger, nullable=False),
    Column("has_ids", SmallInteger, nullable=False),
    Column("location", String(2), nullable=False),
    Column("browser", String(64), nullable=False),
    Column("os", String(64), nullable=False),
    Column("device", String(16), nullable=False),
    Column("user_key", String(255), nullable=False),
    # Ten digits of epoch seconds then the country: max() gives the latest country.
    Column("seen", String(12), nullable=False),
    Column("is_404", SmallInteger, nullable=False),
    Column("rt", Integer, nullable=False),
    Column("hb", SmallInteger, nullable=False),
)
