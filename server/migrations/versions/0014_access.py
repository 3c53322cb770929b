"""Access: sessions and invitations (issue 33): reserved, and landed as a no-op.

A release stamped databases with this revision before the work was done, so the work is
0017_access, after it: a database at this revision upgrades through it, as a new one does.

Revision ID: 0014_access
Revises: 0013_otlp
Create Date: 2026-12-07
"""

revision = "0014_access"
down_revision = "0013_otlp"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
