"""Flask CLI commands: `flask --app wsgi db upgrade`, `create-key`, `sweep`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

db_cli = AppGroup("db", help="Database migrations (Alembic).")


def alembic_config(database_url: str):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_database(database_url: str, revision: str = "heads") -> None:
    """Apply migrations up to `revision` (what `make migrate` and the image's migrate run)."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


@db_cli.command("upgrade")
@click.argument("revision", default="heads")
def upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: every head)."""
    url = current_app.config["SETTINGS"].DATABASE_URL
    click.echo(f"migrating {_redact(url)} to {revision} ...")
    upgrade_database(url, revision)
    click.echo("database is up to date")


@db_cli.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from alembic import command

    command.downgrade(alembic_config(current_app.config["SETTINGS"].DATABASE_URL), revision)


@db_cli.command("current")
def current() -> None:
    """Show the database's migration revision."""
    from alembic import command

    command.current(alembic_config(current_app.config["SETTINGS"].DATABASE_URL), verbose=True)


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate", is_flag=True)
def revision(message: str, autogenerate: bool) -> None:
    """Create a migration script."""
    from alembic import command

    cfg = alembic_config(current_app.config["SETTINGS"].DATABASE_URL)
    command.revision(cfg, message=message, autogenerate=autogenerate)


@click.command("create-key")
def create_key_command() -> None:
    """Create an API key and print it (once)."""
    from server.auth import create_key
    from server.db import get_engine

    with get_engine().begin() as conn:
        _key_id, key = create_key(conn)
    click.echo(key)


@click.command("sweep")
def sweep_command() -> None:
    """Enqueue stored batches that no worker has processed yet."""
    from worker.sweeper import sweep

    click.echo(f"enqueued {sweep(min_age_seconds=0)} batches")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def init_cli(app) -> None:
    from server.demo import seed_demo_command
    from worker.retention import retention_command

    app.cli.add_command(db_cli)
    app.cli.add_command(create_key_command)
    app.cli.add_command(sweep_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(retention_command)
