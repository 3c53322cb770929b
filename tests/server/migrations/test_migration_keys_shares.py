"""0009_keys_shares on a database that holds keys: they keep working, gain a name and a
rotation state, share links are deleted with their key, and the revision goes back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from server.cli import upgrade_database


def test_keys_come_through_and_links_go_with_their_key(old_database):
    from alembic import command

    from server.cli import alembic_config

    url = old_database
    upgrade_database(url, "0008_lake")
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
    upgrade_database(url)
    columns = {c["name"] for c in inspect(engine).get_columns("api_keys")}
    assert {"name", "previous_key_hash", "previous_key_expires_at"} <= columns
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        key = conn.execute(text("SELECT name, previous_key_hash FROM api_keys")).one()
        assert tuple(key) == (None, None)
        conn.execute(
            text(
                "INSERT INTO share_links (key_id, token_hash, filters, created_at) "
                "VALUES (7, :h, '{}', :t)"
            ),
            {"h": b"\x01" * 32, "t": now},
        )
        conn.execute(text("DELETE FROM api_keys WHERE id = 7"))
        assert conn.execute(text("SELECT count(*) FROM share_links")).scalar() == 0
    engine.dispose()

    command.downgrade(alembic_config(url), "0008_lake")
    engine = create_engine(url)
    assert "share_links" not in inspect(engine).get_table_names()
    assert "name" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    engine.dispose()
    upgrade_database(url)
