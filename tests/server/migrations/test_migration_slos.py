"""0018_slos on a database with alert rules and incidents: they come through the widening
of alert_rules (a table rebuild on SQLite) intact, a burn-rate rule goes with its SLO,
and the revision goes back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from server.cli import upgrade_database


def test_rules_and_incidents_come_through_and_burn_rules_go_with_their_slo(old_database):
    from alembic import command

    from server.cli import alembic_config

    url = old_database
    upgrade_database(url, "0017_access")
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
                "INSERT INTO alert_rules (id, key_id, name, kind, threshold, window_minutes, "
                "min_requests, include_4xx, created_at) "
                "VALUES (3, 7, 'Errors', 'error_rate', 5, 10, 1, false, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO alert_incidents (key_id, rule_id, started_at, value, summary) "
                "VALUES (7, 3, :t, 9.5, 'x')"
            ),
            {"t": now},
        )
    upgrade_database(url)
    columns = {c["name"]: c for c in inspect(engine).get_columns("alert_rules")}
    assert "slo_id" in columns and columns["kind"]["type"].length == 32
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        assert conn.execute(text("SELECT count(*) FROM alert_incidents")).scalar() == 1
        assert conn.execute(text("SELECT name FROM alert_rules")).scalar() == "Errors"
        conn.execute(
            text(
                "INSERT INTO slos (id, key_id, name, objective, include_4xx, target, "
                "window_days, endpoints, created_at) "
                "VALUES (1, 7, 'API', 'availability', false, 99.9, 30, '[]', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO alert_rules (id, key_id, name, kind, include_4xx, slo_id, "
                "created_at) VALUES (4, 7, 'API: fast burn', 'slo_fast_burn', false, 1, :t)"
            ),
            {"t": now},
        )
        conn.execute(text("DELETE FROM slos WHERE id = 1"))
        assert conn.execute(text("SELECT id FROM alert_rules")).scalars().all() == [3]
    command.downgrade(alembic_config(url), "0017_access")
    assert "slo_id" not in {c["name"] for c in inspect(engine).get_columns("alert_rules")}
    assert "slos" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alert_incidents")).scalar() == 1
    engine.dispose()
