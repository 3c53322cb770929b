"""The demo key: seeding through the real writers, topping up, and every panel having data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from dash_app.panels import compute
from server.demo.seed import demo_key, seed_demo
from server.demo.traffic import ENDPOINTS
from server.lake import catalog
from server.models import api_keys
from server.stats.filters import Filters


def test_seed_then_top_up(sqlite_app):
    engine = sqlite_app.engine
    now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    progress = []
    key_id, added = seed_demo(engine, days=3, now=now, progress=lambda d, t: progress.append(d))
    assert added > 1000
    assert progress[-1] == len(progress) == 72  # one step an hour
    with engine.connect() as conn:
        assert conn.execute(select(api_keys.c.is_demo).where(api_keys.c.id == key_id)).scalar()
        assert demo_key(conn) == key_id
        in_files, _bytes = catalog.storage_bytes(conn, key_id)
    # Seeding ends with an export: every row is in the columnar store's files.
    assert in_files == added
    assert compute(key_id, Filters(period="all"), now).summary["requests"] == added
    same_key, more = seed_demo(engine, days=3, now=now + timedelta(hours=2))
    assert same_key == key_id
    assert 0 < more < added / 10  # two hours, not three days again


def test_demo_has_data_in_every_panel(sqlite_app):
    now = datetime.now(UTC)
    key_id, _added = seed_demo(sqlite_app.engine, days=8, now=now)
    data = compute(key_id, Filters(period="7d"), now)
    assert data.summary["requests"] > 3000
    assert data.users > 100
    for name in (
        "histogram",
        "status_codes",
        "endpoints",
        "versions",
        "locations",
        "browsers",
        "systems",
        "devices",
        "top_users",
    ):
        assert not getattr(data, name).empty, name
    assert set(data.versions["version"]) == {"v1", "v2", "v3", ""}  # "" is "No version"
    assert {c // 100 for c in data.status_codes["status"]} >= {2, 3, 4, 5}
    assert len(data.locations) >= 30
    assert "bot" in set(data.devices["value"])
    assert len(set(data.endpoints["method"] + data.endpoints["endpoint"])) >= 30
    assert len(ENDPOINTS) >= 30


def test_seed_demo_command(sqlite_app):
    result = sqlite_app.app.test_cli_runner().invoke(args=["seed-demo", "--days", "1"])
    assert result.exit_code == 0, result.output
    assert "requests added" in result.output
