"""SLOs, deploys, usage and ingest health (issue 35): reserved; filled in by that work.

Revision ID: 0015_slos
Revises: 0014_access
Create Date: 2026-12-07
"""

revision = "0015_slos"
down_revision = "0014_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
