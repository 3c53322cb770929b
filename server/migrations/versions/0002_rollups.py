"""Rollups: hourly, daily and monthly aggregates per key that the dashboard reads.

Revision ID: 0002_rollups
Revises: 0001_core
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_rollups"
down_revision = "0001_core"
branch_labels = None
depends_on = None

HIST = [f"h{i:02d}" for i in range(64)]
HOURS = [f"hr{i:02d}" for i in range(24)]
TABLES = (
    "rollup_user_counts",
    "rollup_users",
    "rollup_clients",
    "rollup_locations",
    "rollup_endpoints",
    "rollup_traffic",
)


def _base() -> list[sa.Column]:
    return [
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
    ]


def _filters() -> list[sa.Column]:
    return [
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("bot", sa.SmallInteger(), nullable=False),
    ]


def _counts() -> list[sa.Column]:
    return [
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("rt_sum", sa.BigInteger(), nullable=False),
    ]


def _ints(names: list[str]) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer()) for name in names]


def _table(
    name: str, dims: list[sa.Column], measures: list[sa.Column], keys: list[str] | None = None
) -> None:
    base = _base()
    keys = keys or [c.name for c in base + dims]
    op.create_table(
        name, *base, *dims, *measures, sa.PrimaryKeyConstraint(*keys, name=op.f(f"pk_{name}"))
    )


def upgrade() -> None:
    _table("rollup_traffic", _filters(), _counts() + _ints(HIST) + _ints(HOURS))
    _table(
        "rollup_endpoints",
        _filters()
        + [
            sa.Column("method", sa.String(7), nullable=False),
            sa.Column("endpoint", sa.String(255), nullable=False),
        ],
        _counts()
        + [
            sa.Column("n_query", sa.BigInteger(), nullable=False),
            sa.Column("n_ids", sa.BigInteger(), nullable=False),
        ]
        + _ints(HIST),
    )
    _table(
        "rollup_locations",
        _filters() + [sa.Column("location", sa.String(2), nullable=False)],
        _counts() + _ints(HIST),
    )
    _table(
        "rollup_clients",
        _filters()
        + [
            sa.Column("browser", sa.String(64), nullable=False),
            sa.Column("os", sa.String(64), nullable=False),
            sa.Column("device", sa.String(16), nullable=False),
        ],
        _counts() + _ints(HIST),
    )
    _table(
        "rollup_users",
        [
            sa.Column("hostname", sa.String(255), nullable=False),
            sa.Column("bot", sa.SmallInteger(), nullable=False),
            sa.Column("user_key", sa.String(255), nullable=False),
        ],
        [
            sa.Column("n", sa.BigInteger(), nullable=False),
            sa.Column("n_404", sa.BigInteger(), nullable=False),
            sa.Column("last_seen", sa.BigInteger(), nullable=False),
            sa.Column("location", sa.String(2), nullable=False),
        ],
        ["key_id", "grain", "hostname", "bot", "bucket", "user_key"],
    )
    _table(
        "rollup_user_counts",
        [
            sa.Column("hostname", sa.String(255), nullable=False),
            sa.Column("bot", sa.SmallInteger(), nullable=False),
        ],
        [
            sa.Column("users", sa.BigInteger(), nullable=False),
            sa.Column("users_ok", sa.BigInteger(), nullable=False),
        ],
        ["key_id", "grain", "hostname", "bot", "bucket"],
    )


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)
