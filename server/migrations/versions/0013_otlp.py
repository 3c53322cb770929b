"""OpenTelemetry ingest (issue 32): reserved, and landed as a no-op.

A release stamped databases with this revision before the work was done, so the work is
0016_otlp, after it: a database at this revision upgrades through it, as a new one does.

Revision ID: 0013_otlp
Revises: 0012_errors_consumers
Create Date: 2026-12-07
"""

revision = "0013_otlp"
down_revision = "0012_errors_consumers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
