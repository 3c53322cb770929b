"""Flask CLI commands: `flask --app wsgi db upgrade`, `keys create|list|delete|invite|
invites|revoke-invite`, `create-key`, `sweep`, `batches`, `lake status|export`."""

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
    from sqlalchemy.exc import DBAPIError

    from server.runtime.startup import explain_database_error

    url = current_app.config["SETTINGS"].DATABASE_URL
    click.echo(f"migrating {_redact(url)} to {revision} ...")
    try:
        upgrade_database(url, revision)
    except DBAPIError as exc:
        raise click.ClickException(str(explain_database_error(exc, url))) from None
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
    """Create an API key and print it (once); `keys create` also names it."""
    from server.db import get_engine
    from server.keys.api_keys import create_key

    with get_engine().begin() as conn:
        _key_id, key = create_key(conn)
    click.echo(key)


keys_cli = AppGroup(
    "keys",
    help="API keys and invitations, for operators: whatever SIGNUP says, never rate limited.",
)


@keys_cli.command("create")
@click.option("--name", help="What the key's owner calls the API (1 to 100 characters).")
def keys_create(name: str | None) -> None:
    """Make a key and print it (shown once: only its hash is kept)."""
    from server.db import get_engine
    from server.keys.api_keys import create_key

    try:
        with get_engine().begin() as conn:
            key_id, key = create_key(conn, name=name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    click.echo(f"key id {key_id}{f' ({name.strip()})' if name else ''}, shown once:", err=True)
    click.echo(key)


@keys_cli.command("list")
def keys_list() -> None:
    """Every key: id, name, created, last used, open dashboard sessions."""
    from server.db import get_engine
    from server.keys.api_keys import list_keys

    with get_engine().connect() as conn:
        found = list_keys(conn)
    click.echo(f"{'id':>6}  {'created':<16}  {'last used':<16}  {'sessions':>8}  name")
    for k in found:
        name = (k["name"] or "") + (" (demo)" if k["is_demo"] else "")
        click.echo(f"{k['id']:>6}  {k['created_at']:%Y-%m-%d %H:%M}  "
                   f"{k['last_used_at']:%Y-%m-%d %H:%M}  {k['sessions']:>8}  {name}")  # fmt: skip


@keys_cli.command("delete")
@click.argument("key_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def keys_delete(key_id: int, yes: bool) -> None:
    """Delete a key and everything stored for it."""
    from server.db import get_engine
    from server.keys.api_keys import delete_key, key_exists

    with get_engine().connect() as conn:
        if not key_exists(conn, key_id):
            raise click.ClickException(f"no key {key_id} (`flask --app wsgi keys list`)")
    if not yes:
        click.confirm(f"Delete key {key_id} and all its data for good?", abort=True)
    delete_key(key_id)
    click.echo(f"deleted key {key_id} and all its data")


@keys_cli.command("invite")
@click.option("--label", help="Who it is for (the key it makes is named so).")
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True)
@click.option(
    "--url",
    "base_url",
    help="This server's address as the person invited reaches it "
    "[default: http://127.0.0.1:$PORT].",
)
def keys_invite(label: str | None, days: int, base_url: str | None) -> None:
    """Make a single-use invitation to create a key (SIGNUP=invite) and print its link."""
    import os

    from server.db import get_engine
    from server.keys.invites import create_invite, invite_link

    with get_engine().begin() as conn:
        invite_id, token = create_invite(conn, label, days)
    base = base_url or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
    mode = current_app.config["SETTINGS"].SIGNUP
    click.echo(f"invitation {invite_id}, valid {days} days, usable once; send this link "
               "(shown once):", err=True)  # fmt: skip
    click.echo(invite_link(base, token))
    if mode != "invite":
        click.echo(f"note: SIGNUP is {mode}; invitations are taken only with SIGNUP=invite",
                   err=True)  # fmt: skip


@keys_cli.command("invites")
def keys_invites() -> None:
    """Every invitation and its state (pending, used, expired, revoked)."""
    from server.db import get_engine
    from server.keys.invites import list_invites

    with get_engine().connect() as conn:
        found = list_invites(conn)
    if not found:
        click.echo("no invitations")
        return
    click.echo(f"{'id':>6}  {'state':<8}  {'expires':<16}  {'key':>6}  label")
    for i in found:
        click.echo(f"{i['id']:>6}  {i['state']:<8}  {i['expires_at']:%Y-%m-%d %H:%M}  "
                   f"{i['key_id'] or '':>6}  {i['label'] or ''}")  # fmt: skip


@keys_cli.command("revoke-invite")
@click.argument("invite_id", type=click.IntRange(1, 2**31 - 1))
def keys_revoke_invite(invite_id: int) -> None:
    """Revoke a pending invitation: its link stops working at once."""
    from server.db import get_engine
    from server.keys.invites import revoke_invite

    with get_engine().begin() as conn:
        if not revoke_invite(conn, invite_id):
            raise click.ClickException(f"no pending invitation {invite_id}")
    click.echo(f"revoked invitation {invite_id}")


@click.command("sweep")
def sweep_command() -> None:
    """Enqueue stored batches that no worker has processed yet."""
    from server.ingest.sweep import sweep

    click.echo(f"enqueued {sweep(min_age_seconds=0)} batches")


batches_cli = AppGroup(
    "batches",
    help="Accepted batches not stored yet: list them, see why one failed, retry or discard it.",
)


@batches_cli.command("list")
@click.option("--failed", "only_failed", is_flag=True, help="Only those given up on.")
@click.option("--limit", default=50, show_default=True)
def batches_list(only_failed: bool, limit: int) -> None:
    """Staged batches: those given up on first, then retrying, then waiting."""
    from server.db import get_engine, utcnow
    from server.ingest.backlog import age_text, list_batches

    with get_engine().connect() as conn:
        found = list_batches(conn, only_failed=only_failed, limit=limit)
    if not found:
        click.echo("no batches waiting: everything accepted is stored")
        return
    now = utcnow()
    click.echo(f"{'id':>8}  {'key':>6}  {'rows':>6}  {'age':>7}  {'tries':>5}  state     error")
    for b in found:
        error = (b.last_error or "").splitlines()[0][:70] if b.last_error else ""
        click.echo(
            f"{b.id:>8}  {b.key_id:>6}  {b.row_count:>6}  {age_text(b.created_at, now):>7}  "
            f"{b.attempts:>5}  {b.state:<8}  {error}"
        )


@batches_cli.command("show")
@click.argument("batch_id", type=int)
@click.option("--rows", "show_rows", default=0, help="Also print the first N staged rows.")
def batches_show(batch_id: int, show_rows: int) -> None:
    """One batch and the whole of its last error."""
    import json

    from server.db import get_engine
    from server.ingest.backlog import age_text, get_batch, staged_rows

    with get_engine().connect() as conn:
        batch = get_batch(conn, batch_id)
        rows = staged_rows(conn, batch_id) if batch and show_rows else None
    if batch is None:
        raise click.ClickException(f"no staged batch {batch_id} (stored, discarded or never)")
    click.echo(f"batch {batch.id}: key id {batch.key_id}, {batch.row_count} rows, "
               f"accepted {age_text(batch.created_at)} ago, {batch.attempts} attempts, "
               f"{batch.state}")  # fmt: skip
    if batch.last_error:
        click.echo(f"last error ({age_text(batch.last_error_at)} ago):\n{batch.last_error}")
    for row in (rows or [])[:show_rows]:
        click.echo(json.dumps(row, ensure_ascii=False))


@batches_cli.command("retry")
@click.argument("batch_ids", type=int, nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Every batch given up on.")
def batches_retry(batch_ids: tuple[int, ...], all_failed: bool) -> None:
    """Give batches their tries back: queued for the workers, or (without Redis) run here."""
    from server.db import get_engine
    from server.ingest.backlog import describe_error, failed_ids, reset_for_retry
    from server.ingest.staging import process_batch, requeue
    from server.queue import InlineQueue, get_queue

    ids = _chosen(batch_ids, all_failed, failed_ids)
    run_here = isinstance(get_queue(), InlineQueue)
    queued = 0
    for batch_id in ids:
        with get_engine().begin() as conn:
            if not reset_for_retry(conn, batch_id):
                click.echo(f"batch {batch_id}: not staged (already stored or discarded)")
                continue
        if not run_here:
            queued += requeue(batch_id) != "down"
            continue
        try:
            rows = process_batch(batch_id)
        except Exception as exc:
            click.echo(f"batch {batch_id}: failed again: {describe_error(exc)}")
        else:
            click.echo(f"batch {batch_id}: stored ({rows} rows)")
    if not run_here:
        click.echo(f"queued {queued} batches for the workers; "
                   "`flask --app wsgi batches list` shows what is left")  # fmt: skip


@batches_cli.command("discard")
@click.argument("batch_ids", type=int, nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Every batch given up on.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def batches_discard(batch_ids: tuple[int, ...], all_failed: bool, yes: bool) -> None:
    """Delete batches for good: their rows are never stored."""
    from server.db import get_engine
    from server.ingest.backlog import discard, failed_ids

    ids = _chosen(batch_ids, all_failed, failed_ids)
    if not yes:
        click.confirm(f"Discard {len(ids)} batches for good? Their rows are lost", abort=True)
    with get_engine().begin() as conn:
        for batch_id in ids:
            rows = discard(conn, batch_id)
            found = "not staged" if rows is None else f"discarded ({rows} rows)"
            click.echo(f"batch {batch_id}: {found}")


def _chosen(batch_ids: tuple[int, ...], all_failed: bool, failed_ids) -> list[int]:
    from server.db import get_engine

    if all_failed:
        with get_engine().connect() as conn:
            batch_ids = (*batch_ids, *failed_ids(conn))
    if not batch_ids:
        raise click.UsageError("name the batches (ids from `batches list`) or pass --failed")
    return list(dict.fromkeys(batch_ids))


lake_cli = AppGroup("lake", help="The columnar store: what it holds, and its export.")


@lake_cli.command("status")
def lake_status() -> None:
    """Files, rows and bytes in the store; rows still waiting in the hot table."""
    from sqlalchemy import func, select

    from server.db import get_engine
    from server.lake import catalog
    from server.lake.models import lake_files
    from server.lake.storage import get_storage

    with get_engine().connect() as conn:
        rows, size = catalog.storage_bytes(conn)
        files = conn.execute(
            select(func.count(), func.count(lake_files.c.summary)).where(
                lake_files.c.retired_at.is_(None)
            )
        ).one()
        waiting, _oldest = catalog.pending(conn, catalog.exported_id(conn))
    click.echo(f"store: {get_storage().describe()}")
    click.echo(f"  {files[0]} files ({files[1]} with summaries), {rows:,} rows, {size:,} bytes")
    if rows:
        click.echo(f"  {size / rows:.1f} bytes a row in files")
    click.echo(f"hot rows waiting for the export: {waiting:,}")


@lake_cli.command("export")
def lake_export() -> None:
    """Move every waiting hot row into files now, and compact (what the job does)."""
    from server.lake.export import flush

    result = flush()
    click.echo(
        f"exported {result['exported']:,} rows into {result['files']} files; "
        f"{result['merged']} files merged"
    )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def init_cli(app) -> None:
    from server.demo.seed import seed_demo_command
    from server.upkeep import retention_command

    app.cli.add_command(db_cli)
    app.cli.add_command(create_key_command)
    app.cli.add_command(keys_cli)
    app.cli.add_command(sweep_command)
    app.cli.add_command(batches_cli)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(retention_command)
    app.cli.add_command(lake_cli)
