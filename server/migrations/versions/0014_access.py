"""Who may make keys, sessions that end, caps (issue 33): reserved; filled in by that work.

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
