"""The columnar store: its catalog, the hot table in the stored row layout, no rollups.

Rows already stored are rewritten into the new `requests` layout (derived columns
computed by server.rules, user agents written out), in batches with progress logged;
the export job then moves them into Parquet files. The rollup tables and their inbox go:
the engine answers every panel from the rows themselves.

Revision ID: 0008_lake
Revises: 0007_ids_errors_digests
Create Date: 2026-12-02
"""

import logging
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008_lake"
down_revision = "0007_ids_errors_digests"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

ROLLUPS = (
    "rollup_traffic",
    "rollup_endpoints",
    "rollup_locations",
    "rollup_clients",
    "rollup_users",
    "rollup_user_counts",
    "rollup_inbox",
)
# The layout as this revision writes it (server.lake.layout at the time), spelled out so
# that later layout changes do not change what this migration does.
NEW_COLUMNS = (
    ("key_id", sa.Integer),
    ("created_at", sa.BigInteger),
    ("hour", sa.Integer),
    ("hostname", sa.String(255)),
    ("method", sa.String(7)),
    ("path", sa.String(255)),
    ("endpoint", sa.String(255)),
    ("route", sa.String(263)),
    ("version", sa.String(16)),
    ("status", sa.SmallInteger),
    ("response_time", sa.Integer),
    ("ip_address", sa.String(45)),
    ("location", sa.String(2)),
    ("user_id", sa.String(255)),
    ("ux", sa.BigInteger),
    ("user_agent", sa.Text),
    ("browser", sa.String(64)),
    ("os", sa.String(64)),
    ("device", sa.String(16)),
    ("bot", sa.Boolean),
    ("framework", sa.String(64)),
)
BATCH = 20_000


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    big_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
    op.create_table(
        "lake_files",
        sa.Column("id", big_id, primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("min_us", sa.BigInteger, nullable=False),
        sa.Column("max_us", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True)),
        sa.Column("hostnames", sa.Text, nullable=False, server_default="[]"),
        sa.Column("digest", sa.String(300)),
        sa.UniqueConstraint("path", name="uq_lake_files_path"),
    )
    op.create_index("ix_lake_files_key_id", "lake_files", ["key_id", "month"])
    op.create_table(
        "lake_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("exported_id", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO lake_state (id, exported_id) VALUES (1, 0)")
    exports = op.create_table(
        "lake_exports",
        sa.Column("boundary", sa.BigInteger, primary_key=True),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The clock the first export waits on (LAKE_EXPORT_SECONDS) starts now.
    op.bulk_insert(exports, [{"boundary": 0, "committed_at": datetime.now(UTC)}])
    op.create_table(
        "key_users",
        sa.Column("ux", big_id, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.UniqueConstraint("key_id", "user_key", name="uq_key_users_key_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_key_users_key_id", "key_users", ["key_id", "ux"])
    op.create_table(
        "requests_next",
        sa.Column("id", big_id, primary_key=True),
        *(sa.Column(name, kind) for name, kind in NEW_COLUMNS),
        # Ids must only grow (rows at or below the export boundary are never read again):
        # without AUTOINCREMENT SQLite hands out freed ids, from 1 once the table is empty.
        sqlite_autoincrement=True,
    )
    _copy_rows(bind, postgres)
    op.drop_table("requests")
    op.rename_table("requests_next", "requests")
    if postgres:
        op.execute("ALTER TABLE requests RENAME CONSTRAINT pk_requests_next TO pk_requests")
        op.execute("ALTER SEQUENCE requests_next_id_seq RENAME TO requests_id_seq")
    op.create_index("ix_requests_key_id", "requests", ["key_id", "id"])
    for table in ROLLUPS:
        op.drop_table(table)


def _copy_rows(bind, postgres: bool) -> None:
    """Old rows into the new layout, a batch at a time, saying how far it has got."""
    from server.lake.users import number_users
    from server.rules import api_version, epoch_micros, template_path

    total = bind.execute(sa.text("SELECT count(*) FROM requests")).scalar()
    if not total:
        return
    log.info("rewriting %s stored requests into the columnar layout", total)
    select = sa.text(
        "SELECT r.id, r.key_id, r.created_at, r.hostname, r.method, r.path, r.status, "
        "r.response_time, r.ip_address, r.location, r.user_id, u.user_agent, u.browser, "
        "u.os, u.device, u.is_bot, r.framework FROM requests r "
        "LEFT JOIN user_agents u ON u.id = r.user_agent_id "
        "WHERE r.id > :after ORDER BY r.id LIMIT :limit"
    )
    names = ["id"] + [name for name, _kind in NEW_COLUMNS]
    after, done, started = 0, 0, time.monotonic()
    while True:
        batch = bind.execute(select, {"after": after, "limit": BATCH}).all()
        if not batch:
            break
        rows = []
        who = {(r[1], _user_key(r[8], r[10])) for r in batch}
        numbers = number_users(bind, {(k, u) for k, u in who if u})
        for (rid, key_id, created_at, host, method, path, status, rt, ip, location, user_id,
             agent, browser, os_family, device, bot, framework) in batch:  # fmt: skip
            if isinstance(created_at, str):
                created_at = created_at.replace(" ", "T")
            micros = epoch_micros(created_at)
            ip = str(ip) if ip is not None else None
            if ip and "/" in ip:
                ip = ip.split("/", 1)[0]
            endpoint = template_path(path)
            rows.append(
                (rid, key_id, micros, micros // 3_600_000_000, host, method, path, endpoint,
                 f"{method} {endpoint}", api_version(path), status, rt, ip, location,
                 user_id, numbers.get((key_id, _user_key(ip, user_id))), agent, browser,
                 os_family, device, bool(bot), framework)
            )  # fmt: skip
        _write(bind, postgres, names, rows)
        after = batch[-1][0]
        done += len(batch)
        log.info(
            "  %s / %s rows (%.0f %%, %.0f s)",
            done,
            total,
            100 * done / total,
            time.monotonic() - started,
        )
    if postgres:
        op.execute(
            "SELECT setval('requests_next_id_seq', (SELECT coalesce(max(id), 1) FROM requests))"
        )


def _user_key(ip, user_id) -> str:
    ip = str(ip).split("/", 1)[0] if ip is not None else None
    return (ip or user_id or "")[:255]


def _write(bind, postgres: bool, names: list[str], rows: list[tuple]) -> None:
    raw = bind.connection.dbapi_connection
    if postgres:
        statement = f"COPY requests_next ({', '.join(names)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(names))
    raw.cursor().executemany(
        f"INSERT INTO requests_next ({', '.join(names)}) VALUES ({marks})", rows
    )


def downgrade() -> None:
    raise RuntimeError(
        "0008_lake cannot be downgraded: stored requests now live in the columnar store's "
        "Parquet files (LAKE_URL), which the old layout never read. Restore a backup instead."
    )
