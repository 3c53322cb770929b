"""Tables of keys, share links, staged batches, monitors and alerts (the columnar store's
own tables are server.lake.models). Each per-key table cascades from api_keys, so
deleting a key row deletes them all."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from server.db import BigId, metadata

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
    # What the owner calls the API (the dashboard's header shows it).
    Column("name", String(100)),
    # After a rotation, the previous key's hash: accepted for ingest only, until then.
    Column("previous_key_hash", LargeBinary(32), index=True),
    Column("previous_key_expires_at", TS),
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


# --- Alerts (server.alerts) ---------------------------------------------------------------
# Where a key's notifications go. A webhook's signing secret is never stored: `secret_salt`
# is, and the secret is HMAC(SECRET_KEY, salt) (server.alerts.notify.channel_secret), so a copy
# of the database alone cannot forge signatures.
alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # webhook | slack | email
    Column("name", String(100), nullable=False),
    Column("target", String(2048), nullable=False),  # a URL, or an email address
    Column("secret_salt", String(64)),
    Column("created_at", TS, nullable=False),
    Index("ix_alert_channels_key_id", "key_id"),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    # error_rate | latency_p95 | no_traffic | monitor_down | ... (server.alerts.rules.KINDS)
    Column("kind", String(32), nullable=False),
    Column("threshold", Float),  # percent (error_rate) or milliseconds (latency_p95)
    Column("window_minutes", Integer),
    Column("min_requests", Integer),
    Column("include_4xx", Boolean, nullable=False, default=False),
    Column("endpoint", String(263)),  # a route as the dashboard shows it: "GET /items/{id}"
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE")),
    Column("consecutive", Integer),  # monitor_down: failed checks in a row
    # slo_fast_burn, slo_slow_burn: the SLO (server.slos.models; the foreign key, ON DELETE
    # CASCADE, is migration 0018_slos's: the tables below the domains name none of theirs).
    Column("slo_id", Integer),
    Column("created_at", TS, nullable=False),
    Index("ix_alert_rules_key_id", "key_id"),
)

alert_rule_channels = Table(
    "alert_rule_channels",
    metadata,
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "channel_id", Integer, ForeignKey("alert_channels.id", ondelete="CASCADE"), primary_key=True
    ),
)

# One row per time a rule fired. At most one open incident per rule (the partial unique
# index), so an evaluation run twice, or by two workers, opens it once.
alert_incidents = Table(
    "alert_incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("resolved_at", TS),
    Column("value", Float),  # what crossed the threshold (percent, ms, requests, failures)
    Column("resolved_value", Float),
    Column("summary", Text, nullable=False),
    Index("ix_alert_incidents_key_id", "key_id", "started_at"),
    Index(
        "uq_alert_incidents_open",
        "rule_id",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
)

# One notification to one channel, created in the transaction that opened or resolved the
# incident (or by "send test"), then sent by server.alerts.sending.send_due, which marks it sent.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("incident_id", Integer, ForeignKey("alert_incidents.id", ondelete="CASCADE")),
    Column(
        "channel_id", Integer, ForeignKey("alert_channels.id", ondelete="CASCADE"), nullable=False
    ),
    Column("event", String(8), nullable=False),  # open | resolve | test
    Column("status", String(8), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    # When a sender may next take it; a sender that takes it moves this past its lease.
    Column("next_attempt_at", TS, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    Column("last_error", Text),
    UniqueConstraint("incident_id", "channel_id", "event", name="uq_alert_deliveries_incident"),
    Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
)

alert_attempts = Table(
    "alert_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "delivery_id",
        Integer,
        ForeignKey("alert_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempted_at", TS, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("error", Text),
    Index("ix_alert_attempts_delivery_id", "delivery_id"),
)


# --- Share links (server.keys.shares) -----------------------------------------------------------
# A read-only link to one key's dashboard, /dashboard/s/<token>. Only the token's SHA-256
# is stored; a revoked link keeps its row (revoked_at) so its list shows what was revoked.
share_links = Table(
    "share_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("label", String(100)),
    # Fixed restrictions every panel, table and export of the link applies.
    Column("hostname", String(255)),
    Column("filters", JSON, nullable=False, default=dict),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS),
    Column("revoked_at", TS),
    Index("ix_share_links_key_id", "key_id"),
    sqlite_autoincrement=True,
)


# --- Errors and consumers (server.ingest.errors, server.ingest.consumers) ----------------
# Exceptions grouped by fingerprint (exception type, the top in-app frame, the route, the
# message with its numbers and ids normalised): a request row carries its group's id
# (server.lake.layout `error_group`), so counts under any filter come from the rows.
error_groups = Table(
    "error_groups",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("type", String(255), nullable=False),
    Column("message", Text),  # the normalised message the group is known by
    Column("frame", String(600)),  # the top in-app frame: "file:line in function"
    Column("route", String(263)),
    # Epoch microseconds of the first and latest occurrence stored.
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("state", String(8), nullable=False, default="open"),  # open | resolved | ignored
    Column("resolved_at", BigInteger),
    # A resolved group that occurs again opens again as a regression.
    Column("regressed_at", BigInteger),
    Column("regressions", Integer, nullable=False, default=0),
    UniqueConstraint("key_id", "fingerprint", name="uq_error_groups_key_id"),
    Index("ix_error_groups_key_id", "key_id", "last_seen"),
)

# The named callers of a key's API (docs/capture.md `consumer`): rows carry the id and
# the group; the name, and the group it has now, live here.
consumers = Table(
    "consumers",
    metadata,
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("consumer_id", String(255), primary_key=True),
    Column("name", String(255)),
    Column("consumer_group", String(100)),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
)

# A key's own masking patterns, applied by the server to every captured header, query
# parameter and body field before anything is stored (server.ingest.masking).
key_masks = Table(
    "key_masks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # header | field | query
    Column("pattern", String(200), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("key_id", "kind", "pattern", name="uq_key_masks_key_id"),
)


# --- Access (server.keys.sessions, server.keys.invites) ----------------------------------
# A signed-in dashboard browser. The cookie holds a random token; only its SHA-256 is
# here. Checked on every dashboard request and callback: deleting the row (sign-out, the
# settings page, rotation, idle or too old) ends the session at once.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("user_agent", String(200)),
    Index("ix_dashboard_sessions_key_id", "key_id"),
    sqlite_autoincrement=True,
)

# An operator's single-use invitation to make a key (SIGNUP=invite). Only the token's
# SHA-256 is kept; a used invite keeps its row and names the key it made.
invites = Table(
    "invites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("label", String(100)),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="SET NULL")),
    Column("revoked_at", TS),
    sqlite_autoincrement=True,
)
