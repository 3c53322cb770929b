"""Why it failed, and for whom: error groups, consumers, a key's masking patterns, and the
requests' details and payloads as datasets of the columnar store of their own.

- requests: consumer, consumer_group, error_group and detail (the id linking a row to its
  details and payloads); NULL for every row before, as for most rows after.
- request_details, request_payloads: the hot tables of the two new datasets.
- lake_files.dataset, lake_exports.dataset: the catalog and the export's boundaries, per
  dataset ("requests" for every file and boundary before).
- error_groups, consumers, key_masks.

Revision ID: 0012_errors_consumers
Revises: 0011_summaries
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_errors_consumers"
down_revision = "0011_summaries"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
HEAD = (
    ("key_id", sa.Integer),
    ("created_at", sa.BigInteger),
    ("hour", sa.Integer),
    ("detail", sa.BigInteger),
)
# Spelled out as this revision writes them (server.lake.layout at the time).
DATASETS = {
    "request_details": (
        ("route", sa.String(263)),
        ("status", sa.SmallInteger),
        ("error_group", sa.BigInteger),
        ("exception_type", sa.String(255)),
        ("exception_message", sa.Text),
        ("stack", sa.Text),
        ("validation", sa.Text),
    ),
    "request_payloads": (
        ("request", sa.Text),
        ("response", sa.Text),
    ),
}


def _key_id(table: str) -> sa.Column:
    return sa.Column(
        "key_id",
        sa.Integer,
        sa.ForeignKey("api_keys.id", ondelete="CASCADE", name=f"fk_{table}_key_id_api_keys"),
        nullable=False,
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("consumer", sa.String(255)))
        batch.add_column(sa.Column("consumer_group", sa.String(100)))
        batch.add_column(sa.Column("error_group", sa.BigInteger))
        batch.add_column(sa.Column("detail", sa.BigInteger))
    for table, columns in DATASETS.items():
        op.create_table(
            table,
            sa.Column("id", BIG_ID, primary_key=True),
            *(sa.Column(name, kind) for name, kind in HEAD + columns),
            sqlite_autoincrement=True,
        )
        op.create_index(f"ix_{table}_key_id", table, ["key_id", "id"])
    if postgres:
        # Captured bodies are the large values here: lz4 where the server has it, as for
        # staged batches (0006_staged_lz4 says why).
        op.execute(
            "DO $$ BEGIN "
            "ALTER TABLE request_payloads ALTER COLUMN request SET COMPRESSION lz4, "
            "ALTER COLUMN response SET COMPRESSION lz4; "
            "EXCEPTION WHEN OTHERS THEN "
            "RAISE NOTICE 'payloads keep the default compression (no lz4): %', SQLERRM; "
            "END $$"
        )
    with op.batch_alter_table("lake_files") as batch:
        batch.add_column(
            sa.Column("dataset", sa.String(16), nullable=False, server_default="requests")
        )
    if postgres:
        op.add_column(
            "lake_exports",
            sa.Column("dataset", sa.String(16), nullable=False, server_default="requests"),
        )
        op.drop_constraint("pk_lake_exports", "lake_exports", type_="primary")
        op.create_primary_key("pk_lake_exports", "lake_exports", ["dataset", "boundary"])
    else:
        # SQLite cannot change a primary key in place: a copy in the new shape replaces it.
        _copy_lake_exports(("dataset", "boundary"), "'requests', boundary, committed_at")
    op.create_table(
        "error_groups",
        sa.Column("id", BIG_ID, primary_key=True),
        _key_id("error_groups"),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("frame", sa.String(600)),
        sa.Column("route", sa.String(263)),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(8), nullable=False, server_default="open"),
        sa.Column("resolved_at", sa.BigInteger),
        sa.Column("regressed_at", sa.BigInteger),
        sa.Column("regressions", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("key_id", "fingerprint", name="uq_error_groups_key_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_error_groups_key_id", "error_groups", ["key_id", "last_seen"])
    op.create_table(
        "consumers",
        _key_id("consumers"),
        sa.Column("consumer_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("consumer_group", sa.String(100)),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "consumer_id", name="pk_consumers"),
    )
    op.create_table(
        "key_masks",
        sa.Column("id", sa.Integer, primary_key=True),
        _key_id("key_masks"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("pattern", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("key_id", "kind", "pattern", name="uq_key_masks_key_id"),
    )


def downgrade() -> None:
    op.drop_table("key_masks")
    op.drop_table("consumers")
    op.drop_index("ix_error_groups_key_id", table_name="error_groups")
    op.drop_table("error_groups")
    op.execute("DELETE FROM lake_exports WHERE dataset <> 'requests'")
    op.execute("DELETE FROM lake_files WHERE dataset <> 'requests'")
    op.execute("DELETE FROM lake_state WHERE id <> 1")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_lake_exports", "lake_exports", type_="primary")
        op.drop_column("lake_exports", "dataset")
        op.create_primary_key("pk_lake_exports", "lake_exports", ["boundary"])
    else:
        _copy_lake_exports(("boundary",), "boundary, committed_at")
    with op.batch_alter_table("lake_files") as batch:
        batch.drop_column("dataset")
    for table in DATASETS:
        op.drop_index(f"ix_{table}_key_id", table_name=table)
        op.drop_table(table)
    with op.batch_alter_table("requests") as batch:
        for name in ("detail", "error_group", "consumer_group", "consumer"):
            batch.drop_column(name)


def _copy_lake_exports(key: tuple[str, ...], select: str) -> None:
    """SQLite: lake_exports rebuilt with `key` as its primary key, its rows copied by
    `select` (alembic's batch mode would do the same, warning that the key changed)."""
    columns = [sa.Column("boundary", sa.BigInteger, nullable=False),
               sa.Column("committed_at", TS, nullable=False)]  # fmt: skip
    if "dataset" in key:
        columns.insert(0, sa.Column("dataset", sa.String(16), nullable=False,
                                    server_default="requests"))  # fmt: skip
    op.create_table(
        "_lake_exports_new", *columns, sa.PrimaryKeyConstraint(*key, name="pk_lake_exports")
    )
    op.execute(f"INSERT INTO _lake_exports_new SELECT {select} FROM lake_exports")
    op.drop_table("lake_exports")
    op.rename_table("_lake_exports_new", "lake_exports")
