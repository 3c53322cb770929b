"""0020_usage_close on a database of 0018: its tables come and go, and each goes with
the rows it hangs from (a deleted deploy takes its release_alerts row, a deleted key its
webhook and notices)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from server.cli import upgrade_database

TABLES = {"release_alerts", "usage_webhooks", "usage_notices"}


def test_the_release_alert_and_usage_webhook_tables_come_go_and_cascade(old_database):
    from alembic import command

    from server.cli import alembic_config

    url = old_database
    upgrade_database(url, "0018_slos")
    engine = create_engine(url)
    assert not TABLES & set(inspect(engine).get_table_names())
    command.upgrade(alembic_config(url), "0020_usage_close")
    assert set(inspect(engine).get_table_names()) >= TABLES
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.execute(text(
            "INSERT INTO api_keys (id, key_hash, created_at, last_active_at, is_demo) "
            "VALUES (7, :h, :t, :t, false)"), {"h": b"\x07" * 32, "t": now})  # fmt: skip
        conn.execute(text(
            "INSERT INTO alert_rules (id, key_id, name, kind, window_minutes, include_4xx, "
            "created_at) VALUES (3, 7, 'Release', 'release_regression', 60, false, :t)"),
            {"t": now})  # fmt: skip
        conn.execute(text(
            "INSERT INTO alert_incidents (id, key_id, rule_id, started_at, summary) "
            "VALUES (5, 7, 3, :t, 'x')"), {"t": now})  # fmt: skip
        conn.execute(text(
            "INSERT INTO deploys (id, key_id, version, deployed_at, created_at) "
            "VALUES (9, 7, '1.0', 1, :t)"), {"t": now})  # fmt: skip
        conn.execute(
            text("INSERT INTO release_alerts (rule_id, deploy_id, incident_id) VALUES (3, 9, 5)")
        )
        conn.execute(text(
            "INSERT INTO usage_webhooks (key_id, url, secret_salt, created_at) "
            "VALUES (7, 'https://example.com/h', 'ab', :t)"), {"t": now})  # fmt: skip
        conn.execute(text(
            "INSERT INTO usage_notices (key_id, month, status, attempts, next_attempt_at, "
            "created_at) VALUES (7, 202611, 'sent', 1, :t, :t)"), {"t": now})  # fmt: skip
        conn.execute(text("DELETE FROM deploys WHERE id = 9"))
        assert conn.execute(text("SELECT count(*) FROM release_alerts")).scalar() == 0
        conn.execute(text("DELETE FROM api_keys WHERE id = 7"))
        for table in ("usage_webhooks", "usage_notices"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    command.downgrade(alembic_config(url), "0018_slos")
    assert not TABLES & set(inspect(engine).get_table_names())
    engine.dispose()
