"""0019_client_health on a database of 0018 with a client seen: the client comes through
with no skew, the drops table is there, and the revision goes back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from server.cli import upgrade_database


def test_a_seen_client_comes_through_and_the_revision_goes_back(old_database):
    from alembic import command

    from server.cli import alembic_config

    url = old_database
    upgrade_database(url, "0018_slos")
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, key_hash, created_at, last_active_at, is_demo) "
                "VALUES (7, :h, :t, :t, false)"
            ),
            {"h": b"\x07" * 32, "t": now},
        )
        conn.execute(
            text(
                "INSERT INTO ingest_clients (key_id, framework, client, first_at, last_at, "
                "batches, last_accepted, last_refused) VALUES (7, 'Flask', 'x/1', :t, :t, 3, 1, 0)"
            ),
            {"t": now},
        )
    command.upgrade(alembic_config(url), "0019_client_health")  # beside any other branch
    assert "ingest_drops" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT batches, skews FROM ingest_clients")).one() == (3, None)
    command.downgrade(alembic_config(url), "0018_slos")
    engine.dispose()
    assert "ingest_drops" not in inspect(engine).get_table_names()
    columns = {c["name"] for c in inspect(engine).get_columns("ingest_clients")}
    assert "skews" not in columns and "batches" in columns
    engine.dispose()
