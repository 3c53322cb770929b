"""OpenTelemetry ingest (issue 32): the service that answered a request and its release.

- requests.service, requests.release: an OTLP span's resource service.name and
  service.version (server.ingest.otlp); NULL for every row before, and for rows from the
  JSON clients. Parquet files written before lack both columns and read them as NULL
  (server.lake.source.read_files).

Revision ID: 0016_otlp
Revises: 0015_slos
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_otlp"
down_revision = "0015_slos"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Spelled out as this revision writes them (server.lake.layout at the time).
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("service", sa.String(255)))
        batch.add_column(sa.Column("release", sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("release")
        batch.drop_column("service")
