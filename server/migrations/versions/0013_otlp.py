"""OpenTelemetry ingest (issue 32): reserved; filled in by that work.

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
