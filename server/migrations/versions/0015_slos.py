"""SLOs, deploys, usage and ingest health (issue 35): reserved, and landed as a no-op.

A release stamped databases with this revision before the work was done, so the work is
0018_slos, after it: a database at this revision upgrades through it, as a new one does.

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
